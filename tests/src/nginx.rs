//! nginx in front of several daemons, for the scale-out test: the checked-in
//! `deploy/nginx/qserve.conf.template` rendered for loopback addresses, run in
//! the foreground from a temporary prefix, and gone (master and workers) when
//! the value drops.
//!
//! nginx cannot listen on port 0: a free port is picked and the start is
//! retried on another one when nginx says it is in use.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::process_group::{kill_group_and_wait, signal_group};

/// The template docs/deploy.md shows, relative to the repository.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/qserve.conf.template")
}

/// The nginx binary: `QSERVE_E2E_NGINX`, else /usr/sbin/nginx, else `nginx` on PATH.
/// Panics with what to install when there is none: the scale-out test must run.
pub fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("QSERVE_E2E_NGINX") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "QSERVE_E2E_NGINX={} does not exist: the scale-out test needs nginx",
            path.display()
        );
        return path;
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        return debian;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "nginx is not installed, and the scale-out test needs it: \
             `apt-get install nginx` (scripts/system-deps.sh installs it), or set QSERVE_E2E_NGINX"
        )
    })
}

/// One daemon behind the proxy: its `--node-id` and `host:port`.
pub struct Backend {
    pub node_id: String,
    pub addr: String,
}

/// The template with its `${QSERVE_*}` variables set, as envsubst would.
/// Exactly two daemons, as the template lists.
pub fn render(template: &str, listen: &str, backends: &[Backend; 2]) -> String {
    let mut text = template.replace("${QSERVE_PROXY_LISTEN}", listen);
    for (i, backend) in backends.iter().enumerate() {
        text = text
            .replace(&format!("${{QSERVE_NODE_{i}}}"), &backend.node_id)
            .replace(&format!("${{QSERVE_ADDR_{i}}}"), &backend.addr);
    }
    // Only the comment's envsubst example may still name them.
    let leftover = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find(|line| line.contains("${QSERVE_"));
    assert!(leftover.is_none(), "unrendered variable: {leftover:?}");
    text
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Renders the template for `backends` and starts nginx on a free
    /// loopback port; waits until it accepts connections.
    pub fn start(backends: &[Backend; 2]) -> Nginx {
        let binary = nginx_binary();
        let template = std::fs::read_to_string(template_path()).expect("reading the template");
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let site = render(&template, &format!("127.0.0.1:{port}"), backends);
            std::fs::write(dir.path().join("qserve.conf"), site).unwrap();
            std::fs::write(dir.path().join("nginx.conf"), main_config(dir.path())).unwrap();
            let mut command = Command::new(&binary);
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-g")
                .arg(format!(
                    "daemon off; pid {};",
                    dir.path().join("nginx.pid").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
            let mut nginx = Nginx { child, port, dir };
            match nginx.wait_until_listening() {
                Ok(()) => return nginx,
                Err(error) if error.contains("Address already in use") => last_error = error,
                Err(error) => panic!("nginx did not start: {error}"),
            }
        }
        panic!("nginx found no free port in 10 tries: {last_error}")
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited with {status}: {}", self.error_log()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx is not listening on {} after 20 s: {}",
                    self.port,
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// nginx's error log so far (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pgid = self.child.id();
        signal_group(pgid, Signal::SIGKILL);
        // Reap the master first: a zombie still counts as a group member.
        let _ = self.child.wait();
        if !kill_group_and_wait(pgid, Duration::from_secs(5)) {
            eprintln!("e2e: nginx process group {pgid} survived SIGKILL for 5 s");
        }
    }
}

/// A port nobody listened on a moment ago (nginx cannot be given port 0).
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// The main configuration around the site file: everything nginx writes
/// stays in the temporary prefix, and it runs as whoever runs the test.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/qserve.conf;\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_every_variable() {
        let template = std::fs::read_to_string(template_path()).unwrap();
        let site = render(
            &template,
            "127.0.0.1:8080",
            &[
                Backend {
                    node_id: "a".into(),
                    addr: "127.0.0.1:1".into(),
                },
                Backend {
                    node_id: "b".into(),
                    addr: "127.0.0.1:2".into(),
                },
            ],
        );
        assert!(site.contains("listen 127.0.0.1:8080;"), "{site}");
        assert!(site.contains("server 127.0.0.1:2;"), "{site}");
    }
}
