//! Running the real `wharf` binary and peer tools, and looking at what they leave on disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The result of a command, with text output.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "failed: {}\n{}",
            self.stderr,
            self.stdout
        );
        self.stdout
    }

    /// Asserts the failure contract: non-zero exit, nothing on stdout, exactly one `error:` line on
    /// stderr containing every one of `needles`. Returns that line.
    #[track_caller]
    pub fn fails_with(self, needles: &[&str]) -> String {
        assert!(
            !self.status.success(),
            "unexpectedly succeeded: {}",
            self.stdout
        );
        assert_eq!(self.stdout, "", "stdout must stay empty on failure");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got {:?}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        for needle in needles {
            assert!(
                lines[0].contains(needle),
                "{:?} not in {:?}",
                needle,
                lines[0]
            );
        }
        lines[0].to_owned()
    }
}

/// Runs `wharf` with `args` in `dir`.
pub fn wharf(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("wharf runs");
    Run::from(output)
}

/// Runs a peer tool, failing the test with a setup hint when it is not installed: interop tests never
/// skip.
pub fn peer(dir: &Path, program: &str, args: &[&str]) -> Run {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for this test ({e}); run scripts/setup-peers")
        });
    Run::from(output)
}

/// A fresh temporary directory.
pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Relative paths of every file under `root`, sorted.
pub fn files(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    out
}

/// The blob files of a layout (`blobs/sha256/<hex>`).
pub fn blob_files(layout: &Path) -> BTreeSet<PathBuf> {
    files(layout)
        .into_iter()
        .filter(|p| p.starts_with("blobs"))
        .collect()
}

/// `sha256:<hex>` of a file's bytes, computed independently of wharf.
pub fn sha256_of(dir: &Path, text: &[u8]) -> String {
    let file = dir.join(".sha-input");
    std::fs::write(&file, text).unwrap();
    let out = peer(dir, "sha256sum", &[file.to_str().unwrap()]).ok();
    std::fs::remove_file(&file).unwrap();
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

/// The demo's multi-arch sample written by wharf into `dir/name` under tag `1.0`.
pub fn sample_layout(dir: &Path) -> PathBuf {
    wharf(dir, &["demo", "--keep", "sample"]).ok();
    dir.join("sample/source")
}

/// A `wharf serve` process on a free port, stopped with SIGTERM when dropped.
pub struct Served {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT` of each listen address.
    pub addrs: Vec<String>,
    pub root: PathBuf,
}

impl Served {
    /// Starts `wharf serve --root DIR/registry --listen 127.0.0.1:0 ARGS...`.
    pub fn start(dir: &Path, args: &[&str]) -> Served {
        Served::start_with_listeners(dir, 1, args)
    }

    pub fn start_with_listeners(dir: &Path, listeners: usize, args: &[&str]) -> Served {
        use std::io::BufRead;
        let root = dir.join("registry");
        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .current_dir(dir)
            .arg("serve")
            .arg("--root")
            .arg(&root);
        for _ in 0..listeners {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("wharf serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut addrs = Vec::new();
        for _ in 0..listeners {
            let line = lines.next().expect("a listening line").unwrap();
            let addr = line
                .rsplit("://")
                .next()
                .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
            addrs.push(addr.to_owned());
        }
        Served { child, addrs, root }
    }

    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    /// Asks for a graceful stop and returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// An htpasswd file with user `alice`, password `s3cret` (bcrypt).
pub fn htpasswd(dir: &Path) -> PathBuf {
    let path = dir.join("htpasswd");
    std::fs::write(
        &path,
        format!("alice:{}\n", bcrypt::hash("s3cret", 5).unwrap()),
    )
    .unwrap();
    path
}

/// A minimal HTTP/1.1 exchange over a fresh connection: returns the status code and the raw response.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// The value of a header in a raw response.
pub fn response_header(response: &str, name: &str) -> Option<String> {
    response.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
