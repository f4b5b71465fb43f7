//! A bounded memo of facts that never change once true (a pair of users' direct thread):
//! it saves a database round trip per send and cannot go stale. Past its capacity it starts
//! over rather than tracking use, so it costs one map and nothing per hit.

use std::collections::HashMap;
use std::sync::Mutex;

/// Up to `cap` remembered values; see the module doc.
pub struct Memo {
    cap: usize,
    map: Mutex<HashMap<String, String>>,
}

impl Memo {
    /// An empty memo holding at most `cap` entries.
    pub fn new(cap: usize) -> Self {
        Memo {
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The value remembered for `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Remembers `value` for `key`; a full memo is emptied first.
    pub fn put(&self, key: String, value: String) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.cap {
            map.clear();
            map.shrink_to_fit();
        }
        map.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn remembers_and_never_holds_more_than_its_cap() {
        let m = Memo::new(2);
        m.put("a".into(), "1".into());
        m.put("b".into(), "2".into());
        assert_eq!(m.get("a").as_deref(), Some("1"));
        m.put("c".into(), "3".into());
        assert_eq!(m.get("a"), None, "a full memo starts over");
        assert_eq!(m.get("c").as_deref(), Some("3"));
    }
}
