//! A real nginx in front of gateway nodes, configured from `deploy/nginx.conf` with only the
//! addresses substituted, so the tests prove the shipped file.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::TempDir;

/// A running nginx on a random loopback port.
pub struct Nginx {
    pub addr: String,
    child: Child,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with `deploy/nginx.conf`, its upstream pointing at `upstreams`.
    pub async fn start(upstreams: &[&str]) -> Nginx {
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shipped = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"),
        )
        .unwrap();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a};\n"))
            .collect();
        let mut site = String::new();
        for line in shipped.lines() {
            let t = line.trim_start();
            if t.starts_with("server 127.0.0.1:") || t.starts_with("# server 127.0.0.1:") {
                continue;
            }
            if t.starts_with("upstream switchboard {") {
                site.push_str(line);
                site.push('\n');
                site.push_str(&servers);
                continue;
            }
            if t == "listen 80;" {
                site.push_str(&format!("    listen 127.0.0.1:{port};\n"));
                continue;
            }
            site.push_str(&line.replace("/var/log/nginx/", &format!("{}/", dir.0.display())));
            site.push('\n');
        }
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {site}\n}}\n",
            d = dir.0.display()
        );
        let path = dir.0.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let nginx = which_nginx();
        let mut child = Command::new(&nginx)
            .args(["-p", &dir.0.display().to_string(), "-c"])
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {nginx}: {e}"));
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Nginx { addr, child, dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "nginx did not start:\n{}",
            std::fs::read_to_string(dir.0.join("error.log")).unwrap_or_default()
        );
    }

    /// The URL of a path behind nginx.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// nginx's error logs so far (the main one and the site's).
    pub fn error_logs(&self) -> String {
        ["error.log", "switchboard.error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.0.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// nginx's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("switchboard.access.log")).unwrap_or_default()
    }
}

/// nginx from PATH or Debian's sbin; fails loudly (tests never skip) when it is missing.
fn which_nginx() -> String {
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("nginx is required for the proxy tests: apt-get install nginx");
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
