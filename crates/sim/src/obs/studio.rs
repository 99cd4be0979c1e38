//! The real OBS Studio, headless, for acceptance tests and benchmarks: not
//! a simulator but its counterpart, so the same tests can be pointed at the
//! real thing.
//!
//! [`HeadlessObs::start`] writes a fresh configuration into a temporary
//! home (`global.ini` with the obs-websocket 5.1 settings under
//! `[OBSWebSocket]`, a profile with a small canvas, a scene collection with
//! `Scene A` and `Scene B`), starts `Xvfb` on a free display and `obs` on
//! it, and waits until the websocket port accepts connections. OBS can then
//! be killed ([`HeadlessObs::kill`], SIGKILL: a crash) and started again
//! ([`HeadlessObs::launch`]) on the same port. Dropping it kills OBS and the
//! display and removes the home.
//!
//! Needs Debian's `obs-studio` (29.x, obs-websocket 5.1) and `xvfb`
//! ([`INSTALL_HINT`]). There is no encoder for streaming here, but x264
//! recording to `$HOME` works.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// What to install when OBS is missing.
pub const INSTALL_HINT: &str = "install OBS Studio and Xvfb: `apt-get install -y --no-install-recommends obs-studio xvfb` (as root; ./test does this when missing)";

/// The scenes of the seeded scene collection, top first.
pub const SCENES: [&str; 2] = ["Scene A", "Scene B"];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `Err` saying what to install when `obs` or `Xvfb` is missing.
pub fn check_installed() -> Result<(), String> {
    for program in ["obs", "Xvfb"] {
        if !on_path(program) {
            return Err(format!("`{program}` is not installed: {INSTALL_HINT}"));
        }
    }
    Ok(())
}

/// A free TCP port on loopback (free when asked; OBS binds it right after).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// OBS Studio with a fresh configuration on its own Xvfb display.
pub struct HeadlessObs {
    home: tempfile::TempDir,
    port: u16,
    display: String,
    xvfb: Child,
    obs: Option<Child>,
    runs: usize,
}

fn write_config(home: &Path, port: u16, password: &str) -> std::io::Result<()> {
    let config = home.join(".config").join("obs-studio");
    std::fs::create_dir_all(config.join("basic/scenes"))?;
    std::fs::create_dir_all(config.join("basic/profiles/Switchboard"))?;
    // `FirstRun=true` means "the first run is over" (OBS writes it after its
    // first start): without it OBS 29 opens the auto-configuration prompt,
    // and while that is up it silently refuses to start outputs.
    std::fs::write(
        config.join("global.ini"),
        format!(
            "[General]\nFirstRun=true\nLastVersion=486539266\nEnableAutoUpdates=false\nConfirmOnExit=false\n\
             Pre19Defaults=false\nPre21Defaults=false\nPre23Defaults=false\nPre24.1Defaults=false\n\n\
             [Basic]\nProfile=Switchboard\nProfileDir=Switchboard\nSceneCollection=Switchboard\nSceneCollectionFile=Switchboard\n\n\
             [OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\nServerPort={port}\nAlertsEnabled=false\nAuthRequired=true\nServerPassword={password}\n"
        ),
    )?;
    // Recordings go to the simple output's default folder: $HOME.
    std::fs::write(
        config.join("basic/profiles/Switchboard/basic.ini"),
        "[General]\nName=Switchboard\n\n[Video]\nBaseCX=320\nBaseCY=180\nOutputCX=320\nOutputCY=180\nFPSType=0\nFPSCommon=10\n",
    )?;
    let scene = |name: &str, uuid: &str| {
        json!({
            "id": "scene", "versioned_id": "scene", "name": name, "uuid": uuid,
            "settings": {"items": [], "id_counter": 0, "custom_size": false},
            "mixers": 0, "sync": 0, "flags": 0, "volume": 1.0, "balance": 0.5,
            "enabled": true, "muted": false
        })
    };
    let collection = json!({
        "name": "Switchboard",
        "current_scene": SCENES[0],
        "current_program_scene": SCENES[0],
        "scene_order": [{"name": SCENES[0]}, {"name": SCENES[1]}],
        "sources": [
            scene(SCENES[0], "6f1f0f4e-0000-4000-8000-00000000000a"),
            scene(SCENES[1], "6f1f0f4e-0000-4000-8000-00000000000b")
        ],
        "groups": [], "transitions": [], "current_transition": "Cut", "transition_duration": 0
    });
    std::fs::write(
        config.join("basic/scenes/Switchboard.json"),
        collection.to_string(),
    )
}

impl HeadlessObs {
    /// Configure, start Xvfb and OBS, wait for the websocket port.
    pub async fn start(password: &str) -> Result<HeadlessObs, String> {
        check_installed()?;
        let home = tempfile::tempdir().map_err(|e| format!("cannot make a home for OBS: {e}"))?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        write_config(home.path(), port, password)
            .map_err(|e| format!("cannot write OBS's configuration: {e}"))?;
        // -displayfd: Xvfb picks a free display and writes its number once ready.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Xvfb: {e}; {INSTALL_HINT}"))?;
        let stdout = xvfb.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let display =
            match tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
                .await
            {
                Ok(Ok(line)) if !line.trim().is_empty() => format!(":{}", line.trim()),
                _ => {
                    let _ = xvfb.kill();
                    let _ = xvfb.wait();
                    return Err("Xvfb did not report a display within 20 s".into());
                }
            };
        let mut obs = HeadlessObs {
            home,
            port,
            display,
            xvfb,
            obs: None,
            runs: 0,
        };
        obs.launch().await?;
        Ok(obs)
    }

    /// The websocket port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary home (recordings land here).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn log_path(&self) -> PathBuf {
        self.home.path().join(format!("obs-{}.log", self.runs))
    }

    /// The last lines OBS printed in its current (or last) run.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Start OBS (again) and wait until its websocket server listens;
    /// returns how long that took.
    pub async fn launch(&mut self) -> Result<Duration, String> {
        self.kill();
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let child = Command::new("obs")
            .args([
                "--minimize-to-tray",
                "--multi",
                "--disable-updater",
                "--disable-missing-files-check",
                "--collection",
                "Switchboard",
                "--profile",
                "Switchboard",
            ])
            .current_dir(self.home.path())
            // A clean environment: nothing of cargo's or of a desktop session.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("DISPLAY", &self.display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start obs: {e}; {INSTALL_HINT}"))?;
        self.obs = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(started.elapsed());
            }
            if let Some(Ok(Some(status))) = self.obs.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "OBS exited with {status} before listening:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "OBS did not open its websocket port {} within 90 s:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: OBS vanishes without a word (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.obs.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for HeadlessObs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- OBS log (last lines) ---\n{}", self.log_tail());
        }
        self.kill();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}
