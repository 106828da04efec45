//! The HTTP-01 challenge responder: `GET /.well-known/acme-challenge/{token}` answers the
//! key authorization of a challenge the controller has set up, and 404 otherwise.

use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Challenge tokens and their key authorizations, while their orders are open.
#[derive(Default)]
pub struct Challenges {
    tokens: Mutex<HashMap<String, String>>,
}

const PREFIX: &str = "/.well-known/acme-challenge/";

impl Challenges {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to one request.
    pub fn answer(&self, path: &str) -> (StatusCode, String) {
        let known = path
            .strip_prefix(PREFIX)
            .and_then(|token| self.lock().get(token).cloned());
        match known {
            Some(key_authorization) => (StatusCode::OK, key_authorization),
            None => (StatusCode::NOT_FOUND, "no such challenge\n".into()),
        }
    }

    /// Serves the responder on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        let answer = move |path: &str| {
            let (status, body) = self.answer(path);
            crate::http::respond(status.as_u16(), "text/plain", body)
        };
        crate::http::serve(listener, Arc::new(answer)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_open_challenges_are_answered() {
        let c = Challenges::default();
        c.insert("tok", "tok.thumb");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok"),
            (StatusCode::OK, "tok.thumb".into())
        );
        assert_eq!(
            c.answer("/.well-known/acme-challenge/other").0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(c.answer("/tok").0, StatusCode::NOT_FOUND);
        c.remove("tok");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok").0,
            StatusCode::NOT_FOUND
        );
    }
}
