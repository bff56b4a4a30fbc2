//! From (path, body) to (status, JSON): the one place where requests,
//! handler results and errors become HTTP answers.

use crate::request::{PluginMethod, Request};
use crate::response::{error_body, ActivateResponse, Response};
use crate::Handler;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200, or 400/404/405/413/... for a bad request, 500 for a failed operation.
    pub status: u16,
    /// The JSON body; `{"Err": "..."}` unless the status is 200.
    pub body: String,
}

impl Reply {
    /// A 200 reply.
    pub fn ok(response: &Response) -> Reply {
        Reply {
            status: 200,
            body: response.to_json(),
        }
    }

    /// An error reply with `{"Err": message}`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply {
            status,
            body: error_body(message),
        }
    }
}

/// Decodes a POST to `path`, runs the handler and encodes its answer.
///
/// `Plugin.Activate` is answered here with both interfaces. A handler
/// that panics, or answers with the reply shape of another method, gets a
/// 500 rather than a dropped connection (libnetwork would retry a dropped
/// call for 30 s).
pub fn dispatch(handler: &dyn Handler, path: &str, body: &[u8]) -> Reply {
    let request = match Request::parse(path, body) {
        Ok(request) => request,
        Err(e) => return Reply::error(e.status(), &e.to_string()),
    };
    let method = request.method();
    if method == PluginMethod::Activate {
        tracing::info!("activated by the engine");
        return Reply::ok(&Response::Activate(ActivateResponse::network_and_ipam()));
    }
    match catch_unwind(AssertUnwindSafe(|| handler.handle(request))) {
        Ok(Ok(response)) if response.answers(method) => Reply::ok(&response),
        Ok(Ok(response)) => Reply::error(
            500,
            &format!(
                "internal error: {} answered with {response:?}",
                method.name()
            ),
        ),
        Ok(Err(e)) => Reply::error(500, &e.message),
        Err(_) => Reply::error(
            500,
            &format!("internal error: the {} handler panicked", method.name()),
        ),
    }
}
