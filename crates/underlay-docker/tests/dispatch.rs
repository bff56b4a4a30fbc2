//! From (path, body) to (status, body) with a scripted handler, no socket.

use std::sync::Mutex;
use underlay_docker::*;

/// Records what it is given and answers with a fixed result.
struct Scripted {
    seen: Mutex<Vec<Request>>,
    answer: fn(&Request) -> Result<Response, PluginError>,
}

impl Scripted {
    fn new(answer: fn(&Request) -> Result<Response, PluginError>) -> Scripted {
        Scripted {
            seen: Mutex::new(Vec::new()),
            answer,
        }
    }

    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Scripted {
    fn handle(&self, request: Request) -> Result<Response, PluginError> {
        let answer = (self.answer)(&request);
        self.seen.lock().unwrap().push(request);
        answer
    }
}

const LEAVE: &[u8] = br#"{"NetworkID":"n1","EndpointID":"e1"}"#;

#[test]
fn activate_is_answered_without_the_handler() {
    let handler = Scripted::new(|_| panic!("not for activate"));
    let reply = dispatch(&handler, "/Plugin.Activate", b"");
    assert_eq!(
        reply,
        Reply {
            status: 200,
            body: r#"{"Implements":["NetworkDriver","IpamDriver"]}"#.into()
        }
    );
    assert!(handler.seen().is_empty());
}

#[test]
fn success_passes_the_typed_request_and_encodes_the_reply() {
    let handler = Scripted::new(|_| Ok(Response::Empty));
    let reply = dispatch(&handler, "/NetworkDriver.Leave", LEAVE);
    assert_eq!(
        reply,
        Reply {
            status: 200,
            body: "{}".into()
        }
    );
    let expected = Request::Leave(EndpointRef {
        network_id: "n1".into(),
        endpoint_id: "e1".into(),
    });
    assert_eq!(handler.seen(), vec![expected]);
}

#[test]
fn plugin_error_is_500_with_err() {
    let handler = Scripted::new(|_| Err(PluginError::new("endpoint e1 is not attached")));
    let reply = dispatch(&handler, "/NetworkDriver.Leave", LEAVE);
    assert_eq!(
        reply,
        Reply {
            status: 500,
            body: r#"{"Err":"endpoint e1 is not attached"}"#.into()
        }
    );
}

#[test]
fn wrong_reply_shape_is_500() {
    let handler = Scripted::new(|_| Ok(Response::Empty));
    let body = br#"{"PoolID":"p","Address":"","Options":null}"#;
    let reply = dispatch(&handler, "/IpamDriver.RequestAddress", body);
    assert_eq!(reply.status, 500);
    let err: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        err["Err"],
        "internal error: IpamDriver.RequestAddress answered with Empty"
    );
}

#[test]
fn handler_panic_is_500() {
    let handler = Scripted::new(|_| panic!("boom"));
    let reply = dispatch(&handler, "/NetworkDriver.Leave", LEAVE);
    assert_eq!(
        reply,
        Reply {
            status: 500,
            body: r#"{"Err":"internal error: the NetworkDriver.Leave handler panicked"}"#.into()
        }
    );
}

#[test]
fn unknown_method_is_404_and_bad_body_is_400() {
    let handler = Scripted::new(|_| Ok(Response::Empty));
    let reply = dispatch(&handler, "/NetworkDriver.Frobnicate", b"{}");
    assert_eq!(
        reply,
        Reply {
            status: 404,
            body: r#"{"Err":"unknown plugin method \"/NetworkDriver.Frobnicate\""}"#.into()
        }
    );
    let reply = dispatch(
        &handler,
        "/NetworkDriver.Leave",
        br#"{"NetworkID":"n1","EndpointID":42}"#,
    );
    assert_eq!(reply.status, 400);
    let err: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let message = err["Err"].as_str().unwrap();
    assert!(
        message.starts_with(
            "invalid NetworkDriver.Leave body: EndpointID: invalid type: integer `42`"
        ),
        "{message}"
    );
    assert!(handler.seen().is_empty());
}
