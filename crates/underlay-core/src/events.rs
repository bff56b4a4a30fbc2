//! Structured events of the long-running parts (the lease keeper, the supervisor): each is
//! logged, and sent to every `underlay events` subscriber.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::state::now_rfc3339;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 UTC.
    pub time: String,
    /// What happened: `parent_down`, `parent_up`, `parent_gone`, `parent_back`,
    /// `endpoint_recreated`, `endpoint_released`, `lease_acquired`, `lease_renewed`,
    /// `lease_changed`, `lease_lost`, `lease_released`, `lease_dropped`...
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The rest, in words ("parent eth0 has no carrier", "198.51.100.7 until ...").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Event {
    pub fn new(event: &str) -> Event {
        Event {
            time: now_rfc3339(),
            event: event.to_string(),
            network: None,
            endpoint: None,
            detail: String::new(),
        }
    }

    pub fn network(mut self, name: &str) -> Event {
        self.network = Some(name.to_string());
        self
    }

    pub fn endpoint(mut self, name: &str) -> Event {
        self.endpoint = Some(name.to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = detail.into();
        self
    }
}

/// Where events go: the log, and every subscriber still listening. Cheap to clone.
#[derive(Clone, Default)]
pub struct EventBus {
    subscribers: Arc<Mutex<Vec<Sender<Event>>>>,
}

impl EventBus {
    pub fn emit(&self, event: Event) {
        tracing::info!(
            event = %event.event,
            network = event.network.as_deref().unwrap_or(""),
            endpoint = event.endpoint.as_deref().unwrap_or(""),
            detail = %event.detail,
            "event"
        );
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    /// Every event from now on, until the receiver is dropped.
    pub fn subscribe(&self) -> Receiver<Event> {
        let (sender, receiver) = mpsc::channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_get_events_from_their_subscription_on_and_leaving_is_fine() {
        let bus = EventBus::default();
        bus.emit(Event::new("before"));
        let first = bus.subscribe();
        let second = bus.subscribe();
        drop(second);
        bus.emit(
            Event::new("parent_down")
                .network("lan")
                .detail("parent eth0 is down"),
        );
        let got = first.try_recv().unwrap();
        assert_eq!(
            (got.event.as_str(), got.network.as_deref()),
            ("parent_down", Some("lan"))
        );
        assert!(
            first.try_recv().is_err(),
            "nothing from before the subscription"
        );
        let line = serde_json::to_string(&got).unwrap();
        assert!(
            !line.contains("endpoint"),
            "empty fields are left out: {line}"
        );
    }
}
