//! SIGTERM: every socket is closed with 1001 and the process exits within the grace period.

use std::time::Duration;

use crate::both;
use crate::harness::{Ended, Server};

both! {
    async fn sigterm_closes_sockets_with_1001_and_exits(b) {
        let mut s = Server::start(b).await;
        let mut a = s.ws("alice").await;
        let mut a2 = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for c in [&mut a, &mut a2, &mut bob] {
            assert_eq!(c.closed(Duration::from_secs(5)).await, Ended::Code(1001));
        }
        let exit = s.wait_exit(Duration::from_secs(6)).expect("exited within the grace period");
        assert!(exit.success(), "{exit:?}\n{}", s.log());
        assert!(s.log().contains("draining"));
    }
}
