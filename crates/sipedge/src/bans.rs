//! The node's bans at run time: the upkeep task that applies what the
//! forwarding path, the admin API and the APIBAN poll queued (see
//! [`edge::bans`]), and the admin API's `/api/bans`.

use axum::body::Bytes;
use axum::extract::{Path, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use edge::bans::{Applied, Ban, Bans, Reason};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often queued bans are applied: a flooding source is dropped by its
/// flood count meanwhile, so this only bounds how soon the ban list shows
/// it.
const APPLY_EVERY: Duration = Duration::from_millis(100);

/// The longest ban the operator may set by hand (a year).
const MAX_BAN: Duration = Duration::from_secs(366 * 86_400);

/// Starts the upkeep task on the current runtime; what it applies that
/// the cluster shares goes to `cluster` (the cluster task), if any.
pub fn spawn(bans: Arc<Bans>, cluster: Option<mpsc::Sender<Applied>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(APPLY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let applied = bans.apply(Instant::now());
            log(&applied);
            share(&cluster, applied);
        }
    });
}

/// Hands what this node banned or lifted to the cluster task (dropped if
/// its queue is full: the bans still hold here).
fn share(cluster: &Option<mpsc::Sender<Applied>>, applied: Applied) {
    if let Some(tx) = cluster {
        if !applied.added.is_empty() || !applied.lifted.is_empty() {
            let _ = tx.try_send(applied);
        }
    }
}

fn log(applied: &edge::bans::Applied) {
    // A flood of forged sources could ban thousands at once: the first
    // few are named, the rest counted.
    const NAMED: usize = 5;
    for (ip, ban) in applied.added.iter().take(NAMED) {
        if ban.reason == Reason::Flood {
            tracing::warn!(
                source = %ip,
                edge = ban.edge.as_deref().unwrap_or(""),
                "flood: source banned"
            );
        }
    }
    let more = applied.added.len().saturating_sub(NAMED);
    if more > 0 {
        tracing::warn!(count = more, "flood: more sources banned");
    }
}

/// What `/api/bans` acts on: the node's bans, and the cluster task that
/// shares the operator's changes.
#[derive(Clone)]
pub struct Banning {
    /// The node's bans.
    pub bans: Arc<Bans>,
    /// The cluster task's queue, with `[cluster] redis`.
    pub cluster: Option<mpsc::Sender<Applied>>,
}

/// One ban in `GET /api/bans`.
#[derive(Serialize)]
pub struct BanBody {
    /// The banned address.
    pub address: String,
    /// `flood`, `admin` or `apiban`.
    pub reason: &'static str,
    /// The edge whose flood threshold it crossed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// When it ends, in Unix seconds.
    pub until: u64,
    /// Seconds left.
    pub expires_in: u64,
}

impl BanBody {
    fn of(bans: &Bans, ip: IpAddr, ban: &Ban, now: Instant) -> BanBody {
        BanBody {
            address: ip.to_string(),
            reason: ban.reason.name(),
            edge: ban.edge.as_deref().map(str::to_owned),
            until: ban.until_ms / 1000,
            expires_in: ban
                .until_ms
                .saturating_sub(bans.unix_ms(now))
                .div_ceil(1000),
        }
    }
}

/// `GET /api/bans`.
#[derive(Serialize)]
pub struct BansBody {
    /// Bans in force, per reason.
    pub counts: Counts,
    /// Every ban in force, by address.
    pub bans: Vec<BanBody>,
}

/// Bans in force per reason.
#[derive(Serialize)]
pub struct Counts {
    /// Sources that flooded an edge.
    pub flood: usize,
    /// Banned by hand.
    pub admin: usize,
    /// Listed by the APIBAN feed.
    pub apiban: usize,
}

/// The body of `POST /api/bans`.
#[derive(Deserialize)]
struct AddBody {
    address: String,
    seconds: f64,
}

/// `GET /api/bans`: every ban in force. `?reason=flood` (or `admin`,
/// `apiban`) lists one kind only.
pub async fn list(
    Shared(Banning { bans, .. }): Shared<Banning>,
    query: axum::extract::RawQuery,
) -> Response {
    let only = match query.0.as_deref().and_then(|q| q.strip_prefix("reason=")) {
        Some(r) => match Reason::of_name(r) {
            Some(r) => Some(r),
            None => return error(StatusCode::BAD_REQUEST, format!("unknown reason {r:?}")),
        },
        None => None,
    };
    let now = Instant::now();
    let [flood, admin, apiban] = bans.counts(now);
    let body = BansBody {
        counts: Counts {
            flood,
            admin,
            apiban,
        },
        bans: bans
            .list(now)
            .iter()
            .filter(|(_, b)| only.is_none_or(|r| b.reason == r))
            .map(|(ip, b)| BanBody::of(&bans, *ip, b, now))
            .collect(),
    };
    Json(body).into_response()
}

/// `POST /api/bans` with `{"address": "…", "seconds": N}`: bans the
/// address on every edge of the node for N seconds (replacing any ban it
/// had), and answers with the ban.
pub async fn add(Shared(Banning { bans, cluster }): Shared<Banning>, body: Bytes) -> Response {
    let body: AddBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON like {{\"address\": \"203.0.113.7\", \"seconds\": 3600}}: {e}"),
            )
        }
    };
    let Ok(ip) = body.address.trim().parse::<IpAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not an IP address", body.address),
        );
    };
    if !(body.seconds >= 1.0 && body.seconds <= MAX_BAN.as_secs_f64()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("seconds must be from 1 to {}", MAX_BAN.as_secs()),
        );
    }
    let now = Instant::now();
    bans.ban(
        ip,
        Duration::from_secs_f64(body.seconds),
        Reason::Admin,
        None,
        now,
    );
    let applied = bans.apply(now);
    log(&applied);
    share(&cluster, applied);
    tracing::info!(source = %ip, seconds = body.seconds, "banned by the operator");
    let ip = edge::bans::canonical(ip);
    match bans.list(now).into_iter().find(|(a, _)| *a == ip) {
        Some((ip, ban)) => Json(BanBody::of(&bans, ip, &ban, now)).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the ban did not apply".into(),
        ),
    }
}

/// `DELETE /api/bans/{address}`: lifts the address's ban; 404 when it
/// had none.
pub async fn remove(
    Shared(Banning { bans, cluster }): Shared<Banning>,
    Path(address): Path<String>,
) -> Response {
    let Ok(ip) = address.trim().parse::<IpAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{address:?} is not an IP address"),
        );
    };
    bans.lift(ip);
    let applied = bans.apply(Instant::now());
    log(&applied);
    if applied.lifted.is_empty() {
        return error(StatusCode::NOT_FOUND, format!("{ip} is not banned"));
    }
    share(&cluster, applied);
    tracing::info!(source = %ip, "ban lifted by the operator");
    Json(serde_json::json!({ "address": ip.to_string(), "lifted": true })).into_response()
}

fn error(code: StatusCode, error: String) -> Response {
    (code, Json(serde_json::json!({ "error": error }))).into_response()
}
