//! The flow worker's protocol: flow start/update/end records -> EVE `flow` events
//! (`event.rs`; end and update events always, start events when
//! `flow.start_events` is on), alerts about flows (encrypted DNS, raised on a
//! flow's start record), and alerts for packets the IP policy dropped
//! (`ip_alert.rs`).

use std::{collections::HashSet, net::IpAddr};

use crate::{
    event::{FlowEvent, Phase},
    ip_alert,
};
use palisade_abi::{FlowRecord, KIND_IP_BLOCK};
use palisade_ipc::messages::{SupervisorToWorker, WorkerKind, WorkerToSupervisor};
use palisade_worker_runtime::{
    EventOut, Protocol, Record,
    alert::{self, Alert, Signature},
    eve,
};
use serde::Serialize;

/// The DNS-over-TLS port (RFC 7858) and the DoH port.
const DOT_PORT: u16 = 853;
const HTTPS_PORT: u16 = 443;

/// An alert about a flow, joined to its `flow` events by `flow_id` and `community_id`.
#[derive(Serialize)]
struct FlowAlert {
    #[serde(flatten)]
    common: eve::Common,
    alert: Alert,
    palisade: eve::Vendor<()>,
}

/// The flow worker's state.
#[derive(Debug, Default)]
pub struct Flow {
    /// Addresses of known encrypted-DNS resolvers.
    resolvers: HashSet<IpAddr>,
    /// Write an event for a flow's start record too (`flow.start_events`).
    start_events: bool,
}

impl Flow {
    /// The encrypted-DNS signature a new flow matches, if any.
    fn encrypted_dns(&self, common: &eve::Common) -> Option<Signature> {
        if common.dest_port == DOT_PORT {
            return Some(alert::DNS_OVER_TLS);
        }
        let resolver_port = common.dest_port == HTTPS_PORT || common.dest_port == DOT_PORT;
        (resolver_port && self.resolvers.contains(&common.dest_ip))
            .then_some(alert::ENCRYPTED_DNS_RESOLVER_CONNECTION)
    }
}

impl Protocol for Flow {
    const KIND: WorkerKind = WorkerKind::Flow;
    const AWAITS_POLICY: bool = true;

    fn on_supervisor_message(
        &mut self,
        _ctx: &eve::Context,
        msg: SupervisorToWorker,
        out: &mut EventOut<'_>,
    ) -> Result<(), &'static str> {
        let SupervisorToWorker::Policy(policy) = msg else {
            return Err("unexpected message for the flow worker");
        };
        self.resolvers = policy
            .encrypted_dns_addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        self.start_events = policy.flow_start_events;
        out.send(WorkerToSupervisor::RulesetApplied {
            ruleset: policy.ruleset,
        });
        Ok(())
    }

    fn on_record(&mut self, ctx: &eve::Context, record: &Record<'_>, out: &mut EventOut<'_>) {
        if record.hdr.kind == KIND_IP_BLOCK {
            return ip_alert::render(ctx, record, out);
        }
        let Some(phase) = record.hdr.kind().and_then(Phase::of) else {
            return out.drop(palisade_worker_runtime::stats::DROP_UNEXPECTED_KIND);
        };
        let Ok(f) = FlowRecord::read(record.payload) else {
            return out.drop("flow_record_malformed");
        };
        let event = FlowEvent::new(ctx, &record.hdr, &f, phase);
        if phase == Phase::Start
            && let Some(sig) = self.encrypted_dns(&event.common)
        {
            let common = eve::Common {
                event_type: "alert",
                ..event.common.clone()
            };
            out.emit(&FlowAlert {
                palisade: eve::Vendor::new(&common, ()),
                common,
                alert: Alert::new(sig, "allowed"),
            });
        }
        if phase != Phase::Start || self.start_events {
            out.emit_with(|w| event.write(w));
        }
    }
}
