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
        self.send(method, path, body, &[]).await.0
    }

    /// A request with extra headers; the status, the JSON body, and the response headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> ((u16, Value), reqwest::header::HeaderMap) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        ((status, v), headers)
    }

    /// A POST with an `Idempotency-Key`; the status, body, and whether it was a replay.
    pub async fn post_once(&self, path: &str, body: Value, key: &str) -> (u16, Value, bool) {
        let ((st, v), h) = self
            .send(
                reqwest::Method::POST,
                path,
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await;
        (st, v, h.contains_key("idempotent-replayed"))
    }

    /// A PUT.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.go(reqwest::Method::PUT, path, Some(body)).await
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
