//! The vault: connection secrets under envelope encryption.
//!
//! * One **master key** per installation (32 random bytes) lives outside the
//!   database: in `master.key` in the data directory (mode 0600, created on
//!   first start) or in `SWITCHBOARD_MASTER_KEY`. Like ssh with a private
//!   key, a key file that group or others may read is refused.
//! * Each connection has its own **data key**, stored in the database wrapped
//!   (encrypted) by the master key. Deleting a connection deletes its data
//!   key, so copies of its old rows can no longer be read.
//! * Each secret is sealed with its connection's data key.
//!
//! The cipher is XChaCha20-Poly1305 (random 192-bit nonces are safe). The
//! associated data binds every ciphertext to where it belongs (data key to
//! its scope, secret to its connection and name), so a sealed value moved to
//! another row does not decrypt.
//!
//! A **check value** (a constant sealed under the master key) is stored with
//! the vault. At start the key must open it, or the daemon refuses to start:
//! a wrong key never silently creates a second, incompatible vault.
//!
//! **Rotation** re-wraps every data key under a new master key in one
//! database transaction (secrets themselves are not touched), while the
//! daemon keeps serving. For a file key it is crash-safe: the new key is
//! written to `master.key.next` first, the transaction commits, then the file
//! is renamed over `master.key`; a start-up that finds `master.key.next`
//! finishes or discards the rotation depending on which key opens the vault.
//!
//! **Architecture invariant:** only this crate sees plaintext secrets. They
//! leave it as `secrecy::SecretString`, which neither prints nor serializes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use switchboard_core::Secrets;
use switchboard_core::time::now_ms;
use switchboard_store::{Store, StoreError};
use tokio::sync::RwLock;
use zeroize::Zeroizing;

const BLOB_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const CHECK_PLAINTEXT: &[u8] = b"switchboard vault check v1";
const CHECK_AAD: &[u8] = b"switchboard/check/v1";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the master key does not open this vault ({source_name}). The database was sealed with a different key. \
         Restore the original key (the master.key file from the first start, or the original SWITCHBOARD_MASTER_KEY) \
         or point switchboard at a fresh data directory or database. Nothing was changed."
    )]
    WrongMasterKey { source_name: String },
    #[error(
        "the vault already holds secrets but the master key file {path} is missing. Restore it from your backup \
         (or set SWITCHBOARD_MASTER_KEY); switchboard will not create a new key over an existing vault."
    )]
    MissingKeyFile { path: PathBuf },
    #[error(
        "the master key is malformed: {0}. It must be 32 bytes in standard base64 (44 characters)."
    )]
    MalformedKey(String),
    #[error(
        "the master key file {path} is readable by others (mode {mode:04o}); it opens every secret in the vault. \
         Run `chmod 600 {path}` (and check who may have read it), then start again."
    )]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("cannot read or write the master key file {path}: {message}")]
    KeyFile { path: PathBuf, message: String },
    #[error(
        "a secret of connection `{connection_id}` could not be decrypted: the vault is damaged or was tampered with"
    )]
    Undecryptable { connection_id: String },
    #[error(
        "the master key comes from SWITCHBOARD_MASTER_KEY, so the daemon cannot replace it. Stop the daemon and run \
         `switchboard vault rotate-key --offline` with SWITCHBOARD_MASTER_KEY (current key) and \
         SWITCHBOARD_NEW_MASTER_KEY (new key) set, then restart with the new key."
    )]
    KeyFromEnvironment,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VaultError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, VaultError::Store(e) if e.is_retryable())
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

/// The installation's master key.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey(SecretBox::new(Box::new(random_key())))
    }

    /// Parse standard base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|e| VaultError::MalformedKey(e.to_string()))?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            VaultError::MalformedKey(format!("it decodes to {} bytes", bytes.len()))
        })?;
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// Standard base64, for writing the key file or showing it once.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(BASE64.encode(self.0.expose_secret()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        cipher_for(self.0.expose_secret())
    }

    /// The check value that proves this key opens a vault.
    fn check_value(&self) -> Vec<u8> {
        seal(&self.cipher(), CHECK_AAD, CHECK_PLAINTEXT)
    }

    fn opens(&self, check: &[u8]) -> bool {
        open(&self.cipher(), CHECK_AAD, check).is_some_and(|p| p.as_slice() == CHECK_PLAINTEXT)
    }

    fn wrap(&self, scope: &str, data_key: &[u8; 32]) -> Vec<u8> {
        seal(&self.cipher(), &wrap_aad(scope), data_key)
    }

    fn unwrap(&self, scope: &str, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        open(&self.cipher(), &wrap_aad(scope), wrapped).filter(|k| k.len() == 32)
    }

    /// Write the key to `path` with mode 0600, replacing nothing: fails if
    /// the file exists.
    pub fn write_new_file(&self, path: &Path) -> Result<()> {
        let fail = |e: std::io::Error| VaultError::KeyFile {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(fail)?;
        file.write_all(self.to_base64().expose_secret().as_bytes())
            .and_then(|_| file.write_all(b"\n"))
            .and_then(|_| file.sync_all())
            .map_err(fail)
    }

    /// Read a key file. Like ssh with a private key, refuses a file that
    /// its group or others may read or write (see [`VaultError::KeyFileTooOpen`]).
    pub fn read_file(path: &Path) -> Result<MasterKey> {
        refuse_open_permissions(path)?;
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| VaultError::KeyFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?);
        MasterKey::from_base64(&text)
    }
}

/// A key file must be private to its owner: no bit for group or others.
#[cfg(unix)]
fn refuse_open_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::metadata(path).map_err(|e| VaultError::KeyFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_open_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

/// 32 bytes from the operating system's CSPRNG.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random source is unavailable");
    key
}

fn cipher_for(key: &[u8]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key).expect("keys are 32 bytes")
}

fn wrap_aad(scope: &str) -> Vec<u8> {
    format!("switchboard/data-key/v1/{scope}").into_bytes()
}

fn value_aad(connection_id: &str, label: &str) -> Vec<u8> {
    format!("switchboard/value/v1/{connection_id}\0{label}").into_bytes()
}

fn secret_aad(connection_id: &str, name: &str) -> Vec<u8> {
    format!("switchboard/secret/v1/{connection_id}\0{name}").into_bytes()
}

/// `version || nonce || ciphertext+tag`.
fn seal(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the operating system's random source is unavailable");
    let nonce = XNonce::from(nonce);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
    let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ciphertext);
    blob
}

fn open(cipher: &XChaCha20Poly1305, aad: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < 1 + NONCE_LEN || blob[0] != BLOB_VERSION {
        return None;
    }
    let nonce = XNonce::try_from(&blob[1..1 + NONCE_LEN]).ok()?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &blob[1 + NONCE_LEN..],
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file in the data directory, created on first start.
    File(PathBuf),
    /// The value of `SWITCHBOARD_MASTER_KEY`.
    Environment(SecretString),
}

impl KeySource {
    fn describe(&self) -> String {
        match self {
            KeySource::File(path) => format!("key file {}", path.display()),
            KeySource::Environment(_) => "SWITCHBOARD_MASTER_KEY".to_owned(),
        }
    }
}

fn next_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// What opening the vault did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new vault (and, for a key file, a new master key) was created.
    Created,
    /// An existing vault was opened.
    Existing,
    /// An interrupted key rotation was completed.
    RotationCompleted,
}

/// Seals and opens connection secrets. Cheap to share behind an `Arc`.
pub struct Vault {
    store: Store,
    source: KeySource,
    /// Write-locked only by rotation, so nothing is sealed under a key that
    /// is being replaced.
    master: RwLock<MasterKey>,
}

impl Vault {
    /// Open the vault in `store` with the master key from `source`, creating
    /// both on first start. Refuses (see [`VaultError::WrongMasterKey`]) when
    /// the key does not open an existing vault.
    pub async fn open(store: Store, source: KeySource) -> Result<(Vault, Opened)> {
        let check = store.vault_check().await?;
        let (master, opened) = match (&source, check) {
            (KeySource::Environment(text), check) => {
                let key = MasterKey::from_base64(text.expose_secret())?;
                (key, Self::verify_or_init(&store, &source, check).await?)
            }
            (KeySource::File(path), None) => {
                let key = if path.exists() {
                    MasterKey::read_file(path)?
                } else {
                    let key = MasterKey::generate();
                    key.write_new_file(path)?;
                    key
                };
                let _ = fs::remove_file(next_key_path(path));
                store.init_vault_check(&key.check_value(), now_ms()).await?;
                (key, Opened::Created)
            }
            (KeySource::File(path), Some(check)) => {
                let next = next_key_path(path);
                if next.exists() {
                    let next_key = MasterKey::read_file(&next)?;
                    if next_key.opens(&check) {
                        fs::rename(&next, path).map_err(|e| VaultError::KeyFile {
                            path: path.clone(),
                            message: e.to_string(),
                        })?;
                        tracing::warn!(path = %path.display(), "completed an interrupted master key rotation");
                        return Ok((
                            Self::new(store, source, next_key),
                            Opened::RotationCompleted,
                        ));
                    }
                    // The rotation never committed: the current key is still the one.
                    let _ = fs::remove_file(&next);
                }
                if !path.exists() {
                    return Err(VaultError::MissingKeyFile { path: path.clone() });
                }
                let key = MasterKey::read_file(path)?;
                if !key.opens(&check) {
                    return Err(VaultError::WrongMasterKey {
                        source_name: source.describe(),
                    });
                }
                (key, Opened::Existing)
            }
        };
        if let KeySource::Environment(_) = &source {
            let check = store.vault_check().await?.unwrap_or_default();
            if !master.opens(&check) {
                return Err(VaultError::WrongMasterKey {
                    source_name: source.describe(),
                });
            }
        }
        Ok((Self::new(store, source, master), opened))
    }

    async fn verify_or_init(
        store: &Store,
        source: &KeySource,
        check: Option<Vec<u8>>,
    ) -> Result<Opened> {
        match (source, check) {
            (KeySource::Environment(text), None) => {
                let key = MasterKey::from_base64(text.expose_secret())?;
                store.init_vault_check(&key.check_value(), now_ms()).await?;
                Ok(Opened::Created)
            }
            _ => Ok(Opened::Existing),
        }
    }

    fn new(store: Store, source: KeySource, master: MasterKey) -> Vault {
        Vault {
            store,
            source,
            master: RwLock::new(master),
        }
    }

    /// The data key of a connection, created on first use.
    async fn data_key(
        &self,
        master: &MasterKey,
        connection_id: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let wrapped = match self.store.data_key(connection_id).await? {
            Some(wrapped) => wrapped,
            None => {
                let fresh = Zeroizing::new(random_key());
                let wrapped = master.wrap(connection_id, &fresh);
                self.store
                    .insert_data_key(connection_id, &wrapped, now_ms())
                    .await?
            }
        };
        master
            .unwrap(connection_id, &wrapped)
            .ok_or_else(|| VaultError::Undecryptable {
                connection_id: connection_id.to_owned(),
            })
    }

    /// Set (`Some`) or delete (`None`) secrets of one connection, all or none.
    pub async fn write_secrets(
        &self,
        connection_id: &str,
        changes: Vec<(String, Option<SecretString>)>,
    ) -> Result<()> {
        let master = self.master.read().await;
        let data_key = self.data_key(&master, connection_id).await?;
        let cipher = cipher_for(&data_key);
        let sealed: Vec<(String, Option<Vec<u8>>)> = changes
            .into_iter()
            .map(|(name, value)| {
                let blob = value.map(|v| {
                    seal(
                        &cipher,
                        &secret_aad(connection_id, &name),
                        v.expose_secret().as_bytes(),
                    )
                });
                (name, blob)
            })
            .collect();
        self.store
            .write_secrets(connection_id, &sealed, now_ms())
            .await?;
        Ok(())
    }

    /// All secrets of one connection, decrypted, for its runtime.
    pub async fn secrets(&self, connection_id: &str) -> Result<Secrets> {
        let rows = self.store.sealed_secrets(connection_id).await?;
        let mut secrets = Secrets::new();
        if rows.is_empty() {
            return Ok(secrets);
        }
        let master = self.master.read().await;
        let data_key = self.data_key(&master, connection_id).await?;
        let cipher = cipher_for(&data_key);
        for row in rows {
            let plain = open(&cipher, &secret_aad(connection_id, &row.name), &row.sealed)
                .ok_or_else(|| VaultError::Undecryptable {
                    connection_id: connection_id.to_owned(),
                })?;
            let text =
                String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Undecryptable {
                    connection_id: connection_id.to_owned(),
                })?;
            secrets.insert(row.name, SecretString::from(text));
        }
        Ok(secrets)
    }

    /// Seal one value for a connection outside its named secrets (for
    /// example an OAuth flow's PKCE verifier), bound to `label`.
    pub async fn seal_value(
        &self,
        connection_id: &str,
        label: &str,
        value: &SecretString,
    ) -> Result<Vec<u8>> {
        let master = self.master.read().await;
        let data_key = self.data_key(&master, connection_id).await?;
        Ok(seal(
            &cipher_for(&data_key),
            &value_aad(connection_id, label),
            value.expose_secret().as_bytes(),
        ))
    }

    /// Open a value sealed by [`Vault::seal_value`] with the same label.
    pub async fn open_value(
        &self,
        connection_id: &str,
        label: &str,
        blob: &[u8],
    ) -> Result<SecretString> {
        let master = self.master.read().await;
        let data_key = self.data_key(&master, connection_id).await?;
        let undecryptable = || VaultError::Undecryptable {
            connection_id: connection_id.to_owned(),
        };
        let plain = open(
            &cipher_for(&data_key),
            &value_aad(connection_id, label),
            blob,
        )
        .ok_or_else(undecryptable)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())?;
        Ok(SecretString::from(text))
    }

    /// Replace the master key with a new random one and re-wrap every data
    /// key, without stopping. Only for a key file; see the module docs.
    /// Returns how many data keys were re-wrapped.
    pub async fn rotate_master_key(&self) -> Result<usize> {
        let KeySource::File(path) = &self.source else {
            return Err(VaultError::KeyFromEnvironment);
        };
        let mut master = self.master.write().await;
        let master: &mut MasterKey = &mut master;
        let new_key = MasterKey::generate();
        let next = next_key_path(path);
        let _ = fs::remove_file(&next);
        new_key.write_new_file(&next)?;
        let count = match rewrap_all(&self.store, master, &new_key).await {
            Ok(count) => count,
            Err(e) => {
                let _ = fs::remove_file(&next);
                return Err(e);
            }
        };
        fs::rename(&next, path).map_err(|e| VaultError::KeyFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        *master = new_key;
        tracing::info!(data_keys = count, "master key rotated");
        Ok(count)
    }
}

/// Refuse `key` unless it opens the vault in `store`, exactly as a start
/// with that key would ([`VaultError::WrongMasterKey`] naming `source_name`).
/// For `restore` and `backup --with-key`, which check a key without opening
/// the vault for use.
pub async fn check_key(store: &Store, key: &MasterKey, source_name: &str) -> Result<()> {
    match store.vault_check().await? {
        Some(check) if key.opens(&check) => Ok(()),
        _ => Err(VaultError::WrongMasterKey {
            source_name: source_name.to_owned(),
        }),
    }
}

/// Re-wrap every data key of the vault in `store` from `old` to `new` (one
/// transaction). For offline rotation of a key given by the environment.
pub async fn rewrap_all(store: &Store, old: &MasterKey, new: &MasterKey) -> Result<usize> {
    match store.vault_check().await? {
        Some(check) if old.opens(&check) => {}
        _ => {
            return Err(VaultError::WrongMasterKey {
                source_name: "the current key".into(),
            });
        }
    }
    store
        .rewrap_data_keys(&new.check_value(), now_ms(), |scope, wrapped| {
            let key = old
                .unwrap(scope, wrapped)
                .ok_or_else(|| VaultError::Undecryptable {
                    connection_id: scope.to_owned(),
                })?;
            let key: [u8; 32] = key.as_slice().try_into().expect("unwrap checks the length");
            Ok(new.wrap(scope, &Zeroizing::new(key)))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_are_bound_to_their_place() {
        let key = MasterKey::generate();
        let data_key = [7u8; 32];
        let wrapped = key.wrap("conn-a", &data_key);
        assert_eq!(
            key.unwrap("conn-a", &wrapped).unwrap().as_slice(),
            &data_key
        );
        assert!(
            key.unwrap("conn-b", &wrapped).is_none(),
            "a data key moved to another scope must not open"
        );
        assert!(MasterKey::generate().unwrap("conn-a", &wrapped).is_none());
    }

    #[test]
    fn check_value_tells_keys_apart() {
        let key = MasterKey::generate();
        let check = key.check_value();
        assert!(key.opens(&check));
        assert!(!MasterKey::generate().opens(&check));
        let mut tampered = check.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!key.opens(&tampered));
    }

    #[test]
    fn key_text_round_trips_and_rejects_bad_lengths() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(key.to_base64().expose_secret()).unwrap();
        assert!(again.opens(&key.check_value()));
        let err = MasterKey::from_base64("c2hvcnQ=").err().unwrap();
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    async fn sqlite_store(dir: &Path) -> Store {
        Store::connect(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn secrets_survive_rotation_and_the_old_key_stops_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let key_path = dir.path().join("master.key");
        let (vault, opened) = Vault::open(store.clone(), KeySource::File(key_path.clone()))
            .await
            .unwrap();
        assert_eq!(opened, Opened::Created);
        let now = now_ms();
        store
            .insert_connection(&switchboard_core::Connection {
                id: "c1".into(),
                connector: "echo".into(),
                label: "one".into(),
                enabled: true,
                settings: serde_json::json!({}),
                status: switchboard_core::ConnectionStatus::new(
                    switchboard_core::StatusKind::Disconnected,
                    None,
                ),
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
        vault
            .write_secrets(
                "c1",
                vec![("token".into(), Some(SecretString::from("s3cret-value")))],
            )
            .await
            .unwrap();
        let old_key = fs::read_to_string(&key_path).unwrap();

        assert_eq!(vault.rotate_master_key().await.unwrap(), 1);
        let secrets = vault.secrets("c1").await.unwrap();
        assert_eq!(secrets["token"].expose_secret(), "s3cret-value");

        // A fresh open with the rotated file works; the old key is refused.
        let (reopened, _) = Vault::open(store.clone(), KeySource::File(key_path.clone()))
            .await
            .unwrap();
        assert_eq!(
            reopened.secrets("c1").await.unwrap()["token"].expose_secret(),
            "s3cret-value"
        );
        let refused = Vault::open(
            store.clone(),
            KeySource::Environment(SecretString::from(old_key)),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(refused, VaultError::WrongMasterKey { .. }),
            "{refused}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_and_a_new_one_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::generate().write_new_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a new key file is private");
        MasterKey::read_file(&path).unwrap();

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::read_file(&path).err().unwrap();
        assert!(
            matches!(err, VaultError::KeyFileTooOpen { mode: 0o644, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("mode 0644"), "{text}");
        assert!(
            text.contains(&format!("chmod 600 {}", path.display())),
            "{text}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(MasterKey::read_file(&path).is_err(), "group-readable too");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        MasterKey::read_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_missing_key_file_is_not_replaced_over_an_existing_vault() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let key_path = dir.path().join("master.key");
        Vault::open(store.clone(), KeySource::File(key_path.clone()))
            .await
            .unwrap();
        fs::remove_file(&key_path).unwrap();
        let err = Vault::open(store, KeySource::File(key_path.clone()))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, VaultError::MissingKeyFile { .. }), "{err}");
        assert!(!key_path.exists(), "no new key may be written");
    }
}
