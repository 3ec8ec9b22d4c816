//! nginx from Debian's packages as a test and bench peer (a fixed upstream, a token-injecting
//! proxy, TLS in front of the emulator): one process in the foreground, its files under a
//! folder of the caller's, stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running nginx; killed when dropped.
pub struct Nginx(Child);

impl Nginx {
    /// nginx named `name` with `server` (directives inside `http {}`: servers, upstreams, log
    /// formats), its configuration, pid, logs and temporary files under `dir`.
    pub fn start(dir: &Path, name: &str, server: &str) -> Self {
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/{name}.pid;\nerror_log {d}/{name}.err warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  client_body_temp_path {d}/{name}-body;\n  proxy_temp_path {d}/{name}-proxy;\n\
             fastcgi_temp_path {d}/{name}-fcgi;\n  uwsgi_temp_path {d}/{name}-uwsgi;\n  scgi_temp_path {d}/{name}-scgi;\n\
             keepalive_requests 1000000;\n{server}\n}}\n",
            d = dir.display()
        );
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &dir.display().to_string(), "-c", &path.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed by scripts/clients.sh and scripts/bench.sh");
        Self(child)
    }

    /// Its process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
