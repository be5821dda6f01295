//! Registry processes on loopback.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `http://addr/v2/` answers (any status).
pub fn wait_for_registry(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no registry came up at {addr}");
}

fn stop(child: &mut Child) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().expect("the process ends")
}

/// A `wharf serve` process, stopped with SIGTERM when dropped.
pub struct WharfServe {
    pub child: Child,
    /// `127.0.0.1:PORT` of each listen address.
    pub addrs: Vec<String>,
    pub root: PathBuf,
}

/// How to run a `wharf serve` process beyond its arguments.
#[derive(Default)]
pub struct ServeSetup<'a> {
    /// A command to run it under (`prlimit --nofile=256 --`).
    pub wrapper: &'a [&'a str],
    /// Where its standard error goes, instead of the test's.
    pub stderr: Option<&'a Path>,
    /// `--storage LOCATION` instead of `--root DIR/registry`.
    pub storage: Option<&'a str>,
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
}

impl WharfServe {
    /// Starts `BINARY serve --root DIR/registry` on `listeners` free ports, plus `args`, in `dir`.
    pub fn start(binary: &Path, dir: &Path, listeners: usize, args: &[&str]) -> WharfServe {
        WharfServe::start_with(binary, dir, listeners, args, ServeSetup::default())
    }

    /// [`WharfServe::start`], run as `setup` says.
    pub fn start_with(
        binary: &Path,
        dir: &Path,
        listeners: usize,
        args: &[&str],
        setup: ServeSetup<'_>,
    ) -> WharfServe {
        let root = dir.join("registry");
        let mut command = match setup.wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let stderr = match setup.stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("stderr file")),
            None => Stdio::inherit(),
        };
        command
            .current_dir(dir)
            .envs(setup.env.iter().copied())
            .arg("serve");
        match setup.storage {
            Some(storage) => command.args(["--storage", storage]),
            None => command.arg("--root").arg(&root),
        };
        for _ in 0..listeners {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("wharf serve starts");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let addrs = (0..listeners)
            .map(|_| {
                let line = lines.next().expect("a listening line").expect("utf-8");
                line.rsplit("://").next().expect("an address").to_owned()
            })
            .collect();
        WharfServe { child, addrs, root }
    }

    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    /// Asks for a graceful stop and returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        stop(&mut self.child)
    }
}

impl Drop for WharfServe {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Debian's `docker-registry` (CNCF distribution 2.8) with a temporary configuration.
pub struct DockerRegistry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts it on a free port; with `htpasswd`, every request needs basic credentials.
    pub fn start(htpasswd: Option<&Path>) -> DockerRegistry {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth = htpasswd.map_or(String::new(), |file| {
            format!(
                "auth:\n  htpasswd:\n    realm: testkit\n    path: {}\n",
                file.display()
            )
        });
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("config written");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("docker-registry is needed for this test ({e}); run scripts/setup-peers")
            });
        wait_for_registry(&addr);
        DockerRegistry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A private CA and a server certificate it signed for `127.0.0.1` and `localhost`, made with openssl.
pub struct TlsFiles {
    /// The CA certificate, in a directory of its own (for `--cert-dir`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn create(dir: &Path) -> TlsFiles {
        let ca_dir = dir.join("ca");
        std::fs::create_dir_all(&ca_dir).expect("ca directory");
        let ca = ca_dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        let key = dir.join("server.key");
        let csr = dir.join("server.csr");
        let cert = dir.join("server.crt");
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .expect("extensions file");
        let openssl = |args: &[&std::ffi::OsStr]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("openssl is needed for this test ({e})"));
            assert!(
                out.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let s = |text: &'static str| std::ffi::OsStr::new(text);
        openssl(&[
            s("req"),
            s("-x509"),
            s("-newkey"),
            s("rsa:2048"),
            s("-nodes"),
            s("-days"),
            s("2"),
            s("-subj"),
            s("/CN=wharf test CA"),
            s("-keyout"),
            ca_key.as_os_str(),
            s("-out"),
            ca.as_os_str(),
        ]);
        openssl(&[
            s("req"),
            s("-newkey"),
            s("rsa:2048"),
            s("-nodes"),
            s("-subj"),
            s("/CN=127.0.0.1"),
            s("-keyout"),
            key.as_os_str(),
            s("-out"),
            csr.as_os_str(),
        ]);
        openssl(&[
            s("x509"),
            s("-req"),
            s("-in"),
            csr.as_os_str(),
            s("-CA"),
            ca.as_os_str(),
            s("-CAkey"),
            ca_key.as_os_str(),
            s("-CAcreateserial"),
            s("-days"),
            s("2"),
            s("-extfile"),
            ext.as_os_str(),
            s("-out"),
            cert.as_os_str(),
        ]);
        TlsFiles { ca, cert, key }
    }
}

/// nginx (Debian's nginx-light) as a reverse proxy in front of `upstream`, on a free port.
pub struct Nginx {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Proxies every request to `upstream` (`127.0.0.1:PORT`), streaming bodies both ways.
    pub fn start(upstream: &str) -> Nginx {
        Nginx::balance(&[upstream])
    }

    /// Proxies requests to `upstreams` in turn (round robin), streaming bodies both ways: one
    /// address in front of several registry instances.
    pub fn balance(upstreams: &[&str]) -> Nginx {
        Nginx::launch(upstreams, "0")
    }

    /// Proxies to `upstream`, refusing request bodies larger than `limit` (nginx's
    /// `client_max_body_size`, such as `1m`) with 413, as many reverse proxies in front of
    /// registries do.
    pub fn with_body_limit(upstream: &str, limit: &str) -> Nginx {
        Nginx::launch(&[upstream], limit)
    }

    fn launch(upstreams: &[&str], body_limit: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let prefix = dir.path();
        let config = format!(
            "worker_processes 1;\npid {pid};\nerror_log {prefix}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log {prefix}/access.log;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
               fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
               upstream registries {{\n{servers}  }}\n\
               server {{\n    listen {addr};\n    client_max_body_size {body_limit};\n    location / {{\n      proxy_pass http://registries;\n\
                 proxy_http_version 1.1;\n      proxy_set_header Host $http_host;\n      proxy_request_buffering off;\n\
                 proxy_buffering off;\n    }}\n  }}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            servers = upstreams
                .iter()
                .map(|u| format!("    server {u};\n"))
                .collect::<String>(),
            prefix = prefix.display(),
        );
        let config_path = prefix.join("nginx.conf");
        std::fs::write(&config_path, config).expect("config written");
        let binary = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|b| Path::new(b).exists() || *b == "nginx")
            .expect("a candidate");
        let child = Command::new(binary)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&config_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("nginx is needed for this test ({e}); run scripts/setup-peers")
            });
        wait_for_registry(&addr);
        Nginx {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// moto's standalone S3 server (from PyPI, in the venv `scripts/setup-peers` makes) on a free port:
/// an S3-compatible object store on loopback. It checks no signatures.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts it; the venv is `$WHARF_VENV`, else `~/.cache/wharf/venv`, else `moto_server` on PATH.
    pub fn start() -> Moto {
        let venv = std::env::var_os("WHARF_VENV")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wharf/venv")));
        let binary = venv
            .map(|v| v.join("bin/moto_server"))
            .filter(|b| b.exists())
            .unwrap_or_else(|| PathBuf::from("moto_server"));
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("moto_server is needed for this test ({e}); run scripts/setup-peers")
            });
        let addr = format!("127.0.0.1:{port}");
        wait_for_registry(&addr);
        Moto {
            child,
            endpoint: format!("http://{addr}"),
        }
    }

    /// Creates bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("moto answers");
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("request sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer read");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "creating bucket {name}: {answer}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
