//! An HTTP client for the REST API, acting as one user.

use serde_json::{Value, json};

/// An HTTP client for the REST API.
pub struct Http {
    pub base: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Http {
    async fn go(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.go(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.go(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.go(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.go(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a group with the acting user and `members`; returns its id.
    pub async fn group(&self, title: &str, members: &[&str]) -> String {
        let (s, t) = self
            .post(
                "/threads",
                json!({"kind":"group","title":title,"members":members}),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        t["id"].as_str().unwrap().to_string()
    }

    /// The direct thread with `other`; returns its id.
    pub async fn direct(&self, other: &str) -> String {
        let (s, t) = self
            .post("/threads", json!({"kind":"direct","members":[other]}))
            .await;
        assert!(s == 201 || s == 200, "{t}");
        t["id"].as_str().unwrap().to_string()
    }
}
