//! Sans-IO proxy logic of sipedge: configuration, dispatch and the request
//! and response pipelines. Nothing here owns a socket or a clock; the daemon
//! feeds bytes, addresses and time in and sends what comes out.

#![forbid(unsafe_code)]

pub mod bans;
pub mod branch;
pub mod config;
pub mod dispatch;
pub mod flood;
pub mod flow;
pub mod header_policy;
pub mod health;
pub mod hygiene;
pub mod keyhash;
pub mod keyring;
pub mod limits;
pub mod link;
pub mod nat;
pub mod numbers;
pub mod outbound;
pub mod peers;
pub mod proxy;
pub mod reason;
pub mod records;
pub mod registrar;
pub mod stats;
pub mod stun;
pub mod token;
pub mod trace;
pub mod transaction;
pub mod validate;
