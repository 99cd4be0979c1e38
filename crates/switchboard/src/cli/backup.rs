//! The offline commands on a data directory: `backup`, `restore`, and the
//! rule they share with `vault rotate-key --offline`: an offline command works
//! only on a directory that already holds a vault, creates nothing when it
//! does not, and says which directory it looked at.
//!
//! **Why the CLI reads the database itself** (rather than asking the daemon
//! over the API): a backup is a file-level operation on this machine, the
//! master key (with `--with-key`) never travels over HTTP, and it works the
//! same whether the daemon runs or not. SQLite allows a second connection
//! beside the daemon's in WAL mode and `VACUUM INTO` copies one consistent
//! instant (see `switchboard_store::backup`), so the daemon keeps serving and
//! the data-dir lock (which guards against a second *daemon*) is not needed.
//! On PostgreSQL, `pg_dump`/`pg_restore` do this job (see the README).
//!
//! A backup file is a tar archive:
//! `switchboard-backup.json` (a manifest), `switchboard.db` (the snapshot:
//! connections, settings, sealed secrets, rules, variables, archives,
//! webhook deliveries, agents and API tokens, jobs, the event log),
//! `media/<id>` and `media/<id>.json` (the media files and their index
//! entries), and `master.key` only with `--with-key`.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_core::is_media_id;
use switchboard_store::{Store, StoreError, redact_url, sqlite_path};
use switchboard_vault::{KeySource, MasterKey};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::daemon;

/// The manifest's name, first in every backup file.
const MANIFEST: &str = "switchboard-backup.json";
/// Bumped when the layout of a backup file changes.
const FORMAT: u64 = 1;
const DB_NAME: &str = "switchboard.db";
const KEY_NAME: &str = "master.key";
const MEDIA_DIR: &str = "media";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (a tar archive); it must not exist yet.
    file: PathBuf,
    /// Include the master key. The file then opens every secret in it:
    /// keep it as safe as the key itself.
    #[arg(long)]
    with_key: bool,
    /// Data directory of the daemon to back up (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `switchboard backup`.
    file: PathBuf,
    /// Where to restore: a new or empty directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The master key file to restore with, when the backup holds no key
    /// (else SWITCHBOARD_MASTER_KEY, if set, is checked against the backup).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

impl BackupArgs {
    pub(super) fn data_dir(&self) -> Option<PathBuf> {
        self.data_dir.clone()
    }
}

impl RestoreArgs {
    pub(super) fn data_dir(&self) -> Option<PathBuf> {
        self.data_dir.clone()
    }
}

/// The settings of an offline command: the configuration as `serve` reads
/// it, with `--data-dir` on top.
pub(super) fn settings_for(
    cli: &super::Cli,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Settings> {
    let args = super::DaemonArgs {
        listen: None,
        data_dir,
    };
    super::settings(cli.config.as_ref(), Some(&args))
}

/// Where the data directory setting comes from, for error messages.
const DATA_DIR_HINT: &str =
    "set it with --data-dir, `data_dir` in the config file or SWITCHBOARD_DATA_DIR";

/// Open the database of the data directory in `settings` for an offline
/// command, creating nothing: the directory, its database and the vault in
/// it must exist. `lock` takes the data-dir lock (for commands that write).
pub(super) async fn open_existing(
    settings: &Settings,
    lock: bool,
) -> anyhow::Result<(Store, Option<fs::File>)> {
    let dir = &settings.data_dir;
    if settings.is_sqlite() && !dir.is_dir() {
        bail!(
            "no switchboard data directory at {}: it does not exist ({DATA_DIR_HINT}). Nothing was created or changed.",
            dir.display()
        );
    }
    let store = match Store::connect_existing(&settings.database_url).await {
        Ok(store) => store,
        Err(StoreError::NoVault(why)) => bail!(
            "no switchboard vault in the data directory {}: {why}. Nothing was created or changed; point at the \
             directory `switchboard serve` uses ({DATA_DIR_HINT}).",
            dir.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot open the database {}",
                    redact_url(&settings.database_url)
                )
            });
        }
    };
    let lock = if lock && settings.is_sqlite() {
        match daemon::lock_data_dir(dir) {
            Ok(lock) => Some(lock),
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    Ok((store, lock))
}

/// The master key in effect for `data_dir`, and where it came from.
fn current_key(data_dir: &Path) -> anyhow::Result<(MasterKey, String)> {
    match daemon::key_source(data_dir) {
        KeySource::Environment(text) => Ok((
            MasterKey::from_base64(text.expose_secret())?,
            "SWITCHBOARD_MASTER_KEY".into(),
        )),
        KeySource::File(path) => {
            if !path.exists() {
                bail!(
                    "--with-key: there is no master key file at {} and SWITCHBOARD_MASTER_KEY is not set",
                    path.display()
                );
            }
            Ok((
                MasterKey::read_file(&path)?,
                format!("key file {}", path.display()),
            ))
        }
    }
}

/// A temporary directory beside `path` (same file system, so renames work).
fn staging_beside(path: &Path) -> anyhow::Result<tempfile::TempDir> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create the directory {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(".switchboard-staging-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                parent.display()
            )
        })
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The media files worth keeping: `<id>` and `<id>.json`, never a
/// half-written temporary file.
fn media_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_media_name(&name) && entry.file_type()?.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

fn is_media_name(name: &str) -> bool {
    is_media_id(name.strip_suffix(".json").unwrap_or(name))
}

/// `switchboard backup FILE [--with-key]`.
pub(super) async fn backup(
    settings: Settings,
    args: &BackupArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !settings.is_sqlite() {
        bail!(
            "the database is PostgreSQL ({}): back it up with `pg_dump --format=custom`, and copy {} and the master key \
             alongside; see \"Backup and restore\" in the README",
            redact_url(&settings.database_url),
            settings.data_dir.join(MEDIA_DIR).display()
        );
    }
    if args.file.exists() {
        bail!(
            "{} already exists: choose another name or remove it first (a backup never overwrites a file)",
            args.file.display()
        );
    }
    let (store, _) = open_existing(&settings, false).await?;
    let staging = staging_beside(&args.file)?;
    let snapshot_path = staging.path().join(DB_NAME);
    let taken = store.snapshot_into(&snapshot_path).await;
    store.close().await;
    taken.context("cannot take a snapshot of the database")?;

    let snapshot = Store::connect_existing(&sqlite_url(&snapshot_path)).await?;
    let connections = snapshot.list_connections().await?.len();
    let key = if args.with_key {
        let (key, source) = current_key(&settings.data_dir)?;
        let checked = switchboard_vault::check_key(&snapshot, &key, &source).await;
        if let Err(e) = checked {
            snapshot.close().await;
            return Err(e).context("--with-key: the key in use does not belong to this vault");
        }
        Some(Zeroizing::new(format!(
            "{}\n",
            key.to_base64().expose_secret()
        )))
    } else {
        None
    };
    snapshot.close().await;

    let media = media_files(&settings.data_dir.join(MEDIA_DIR))?;
    let manifest = json!({
        "format": FORMAT,
        "switchboard": env!("CARGO_PKG_VERSION"),
        "created_at": switchboard_core::time::now_ms(),
        "database": "sqlite",
        "connections": connections,
        "media_files": media.len(),
        "master_key": key.is_some(),
    });

    // Written beside the target and renamed into place when whole, with
    // mode 0600: a backup holds sealed secrets (and perhaps the key).
    let partial = staging.path().join("backup.tar");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        tar.follow_symlinks(false);
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
        append_bytes(&mut tar, MANIFEST, &manifest_bytes, 0o600)?;
        tar.append_path_with_name(&snapshot_path, DB_NAME)?;
        for (name, path) in &media {
            tar.append_path_with_name(path, format!("{MEDIA_DIR}/{name}"))?;
        }
        if let Some(key) = &key {
            append_bytes(&mut tar, KEY_NAME, key.as_bytes(), 0o600)?;
        }
        let mut out = tar.into_inner()?;
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    if args.file.exists() {
        bail!(
            "{} appeared while the backup was written; nothing was overwritten",
            args.file.display()
        );
    }
    fs::rename(&partial, &args.file).with_context(|| {
        format!(
            "cannot move the backup into place at {}",
            args.file.display()
        )
    })?;

    if json {
        super::output::print_json(&json!({ "file": args.file, "manifest": manifest }));
    } else {
        println!(
            "backup written to {}: the database ({connections} connections) and {} media files, taken from {}.",
            args.file.display(),
            media.len(),
            settings.data_dir.display()
        );
        if key.is_none() {
            println!(
                "The master key is not in it: keep {} (or your SWITCHBOARD_MASTER_KEY) safe and apart from the backup; \
                 a restore needs it.",
                settings.data_dir.join(KEY_NAME).display()
            );
        }
    }
    if key.is_some() {
        eprintln!(
            "warning: {} contains the master key: whoever has this file can open every secret in it. \
             Keep it as safe as the key itself.",
            args.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(switchboard_core::time::now_ms().max(0) as u64 / 1000);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)?;
    Ok(())
}

/// The first entry in `dir` (for naming why a directory is not empty).
fn first_entry(dir: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries
            .next()
            .transpose()?
            .map(|e| e.file_name().to_string_lossy().into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Move a file, copying when it crosses file systems.
fn move_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    if fs::rename(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).with_context(|| format!("cannot write {}", to.display()))?;
    let _ = fs::remove_file(from);
    Ok(())
}

/// `switchboard restore FILE [--data-dir DIR] [--key-file PATH]`.
pub(super) async fn restore(
    settings: Settings,
    args: &RestoreArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = settings.data_dir.clone();
    if !settings.is_sqlite() {
        bail!(
            "the database is PostgreSQL ({}): restore it with `pg_restore`; see \"Backup and restore\" in the README",
            redact_url(&settings.database_url)
        );
    }
    if let Some(entry) = first_entry(&dir)? {
        bail!(
            "refusing to restore into {}: the directory is not empty (it holds `{entry}`). Restore into a new or \
             empty directory ({DATA_DIR_HINT}).",
            dir.display()
        );
    }
    let db_path = sqlite_path(&settings.database_url)
        .context("restore needs a SQLite database file (database_url = \"sqlite://PATH\")")?;
    if db_path.exists() {
        bail!(
            "refusing to restore: the database file {} already exists",
            db_path.display()
        );
    }

    // Unpack into a staging directory beside the target; nothing reaches
    // the target before the backup and the key are checked.
    let staging = staging_beside(&dir)?;
    let manifest = unpack(&args.file, staging.path())?;
    let staged_db = staging.path().join(DB_NAME);
    if !staged_db.is_file() {
        bail!("{} holds no database: it is damaged", args.file.display());
    }
    let staged = Store::connect_existing(&sqlite_url(&staged_db))
        .await
        .with_context(|| format!("{} holds no usable vault", args.file.display()))?;

    enum KeyFrom {
        Backup,
        KeyFile,
        Environment,
    }
    let staged_key = staging.path().join(KEY_NAME);
    let key = if staged_key.is_file() {
        let text = Zeroizing::new(fs::read_to_string(&staged_key)?);
        Some((
            MasterKey::from_base64(&text)?,
            KeyFrom::Backup,
            "the master key in the backup".to_owned(),
        ))
    } else if let Some(path) = &args.key_file {
        Some((
            MasterKey::read_file(path)?,
            KeyFrom::KeyFile,
            format!("key file {}", path.display()),
        ))
    } else {
        match daemon::key_source(&dir) {
            KeySource::Environment(text) => Some((
                MasterKey::from_base64(text.expose_secret())?,
                KeyFrom::Environment,
                "SWITCHBOARD_MASTER_KEY".to_owned(),
            )),
            KeySource::File(_) => None,
        }
    };
    let mut checked = match &key {
        Some((key, _, source)) => switchboard_vault::check_key(&staged, key, source).await,
        None => Ok(()),
    };
    // `serve` prefers SWITCHBOARD_MASTER_KEY to the key file: when it is set
    // it must open this vault too, or the restored dir would not start.
    if let (Ok(()), KeySource::Environment(text)) = (&checked, daemon::key_source(&dir))
        && !matches!(key, Some((_, KeyFrom::Environment, _)))
    {
        checked = match MasterKey::from_base64(text.expose_secret()) {
            Ok(env_key) => {
                switchboard_vault::check_key(
                    &staged,
                    &env_key,
                    "SWITCHBOARD_MASTER_KEY (which `serve` would use)",
                )
                .await
            }
            Err(e) => Err(e),
        };
    }
    staged.close().await;
    checked.context("refusing to restore")?;

    daemon::prepare_data_dir(&dir)?;
    if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    move_file(&staged_db, &db_path)?;
    let staged_media = staging.path().join(MEDIA_DIR);
    let mut media = 0;
    if staged_media.is_dir() {
        let target = dir.join(MEDIA_DIR);
        fs::create_dir_all(&target)?;
        for (name, path) in media_files(&staged_media)? {
            move_file(&path, &target.join(&name))?;
            media += 1;
        }
    }
    let key_note = match &key {
        Some((key, KeyFrom::Backup | KeyFrom::KeyFile, source)) => {
            key.write_new_file(&dir.join(KEY_NAME))?;
            format!(
                "master key: {source}, written to {} (mode 0600)",
                dir.join(KEY_NAME).display()
            )
        }
        Some((_, KeyFrom::Environment, _)) => {
            "master key: SWITCHBOARD_MASTER_KEY opens it; start with the same variable set"
                .to_owned()
        }
        None => format!(
            "master key: not in the backup. Put the original key at {} (chmod 600) or set SWITCHBOARD_MASTER_KEY \
             before starting; a wrong key is refused at start.",
            dir.join(KEY_NAME).display()
        ),
    };
    if json {
        super::output::print_json(&json!({
            "data_dir": dir,
            "manifest": manifest,
            "media_files": media,
            "master_key_restored": matches!(key, Some((_, KeyFrom::Backup | KeyFrom::KeyFile, _))),
        }));
    } else {
        println!(
            "restored {} into {} ({} connections, {media} media files); {key_note}.\nStart it with: switchboard serve --data-dir {}",
            args.file.display(),
            dir.display(),
            manifest["connections"],
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Check the manifest and unpack the known entries of a backup into `into`.
/// Any other entry (or a path that tries to leave `into`) is refused.
fn unpack(file: &Path, into: &Path) -> anyhow::Result<Value> {
    let not_a_backup = || {
        format!(
            "{} is not a switchboard backup file (written by `switchboard backup`)",
            file.display()
        )
    };
    let reader = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(reader));
    let mut entries = archive.entries().with_context(not_a_backup)?;
    let manifest: Value = {
        let mut first = entries
            .next()
            .context(not_a_backup())?
            .with_context(not_a_backup)?;
        if first.path().with_context(not_a_backup)?.as_os_str() != MANIFEST {
            bail!(not_a_backup());
        }
        let mut text = String::new();
        first.read_to_string(&mut text).with_context(not_a_backup)?;
        serde_json::from_str(&text).with_context(not_a_backup)?
    };
    match manifest["format"].as_u64() {
        Some(FORMAT) => {}
        Some(other) => bail!(
            "{} is a backup of format {other}; this switchboard reads format {FORMAT}: restore it with a newer switchboard",
            file.display()
        ),
        None => bail!(not_a_backup()),
    }
    fs::create_dir(into.join(MEDIA_DIR))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{} is damaged", file.display()))?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let known = path == DB_NAME
            || path == KEY_NAME
            || path.strip_prefix("media/").is_some_and(is_media_name);
        if !known || entry.header().entry_type() != tar::EntryType::Regular {
            bail!(
                "{} holds an unexpected entry `{path}`; refusing it",
                file.display()
            );
        }
        entry
            .unpack(into.join(&path))
            .with_context(|| format!("cannot unpack `{path}` from {}", file.display()))?;
    }
    Ok(manifest)
}
