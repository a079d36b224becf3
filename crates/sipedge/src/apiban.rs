//! The APIBAN poll (`[apiban]`): fetches the feed of addresses APIBAN's
//! honeypots caught sending unwanted SIP, and bans them on every edge.
//!
//! The API (<https://apiban.org/doc.html>): `GET {url}/{KEY}/banned`
//! answers the oldest 250 addresses and an `ID`; `GET
//! {url}/{KEY}/banned/{ID}` the next 250 after that ID, and so on. When
//! nothing is newer it answers `{"ipaddress": ["no new bans"], "ID":
//! "none"}` — with status 400, and the body is read whatever the status.
//! Each poll follows the IDs until a page holds fewer than 250 addresses
//! or says "no new bans", pausing between pages (a key may make 11
//! requests in 2 minutes); the next poll starts from the last ID.
//!
//! A listed address stays banned for `ban_time` (7 days, the feed's own
//! span) after the feed last named it; the feed names an address again
//! when it is caught again. The key is read from its file at every poll,
//! so a new key needs no restart.

use edge::bans::{Bans, Reason};
use edge::config::Apiban;
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Addresses in a full page.
const PAGE: usize = 250;

/// The pause between two pages of one poll, at most (shorter when the
/// poll interval is: tests poll a local server every second).
const PAGE_GAP: Duration = Duration::from_secs(11);

/// Pages in one poll, at most: the rest waits for the next poll.
const MAX_PAGES: usize = 100;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One answer of the API.
#[derive(Deserialize)]
struct Answer {
    /// Addresses, or a message (`"no new bans"`, `"rate limit
    /// exceeded"`) alone or as the list's one entry.
    ipaddress: Listed,
    #[serde(rename = "ID")]
    id: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Listed {
    Many(Vec<String>),
    One(String),
}

/// What one page says.
#[derive(Debug, PartialEq, Eq)]
enum Page {
    /// Addresses, and the ID to ask after next.
    Bans {
        ips: Vec<IpAddr>,
        next: String,
        full: bool,
    },
    /// Nothing newer than the ID asked after.
    NoNewBans,
    /// Something else (`unauthorized`, `rate limit exceeded`, not JSON):
    /// why, for the log.
    Refused(String),
}

/// Reads one answer (`status` and `body`).
fn read(status: u16, body: &[u8]) -> Page {
    let Ok(a) = serde_json::from_slice::<Answer>(body) else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Page::Refused(format!("status {status}: {}", text.trim()));
    };
    let entries = match a.ipaddress {
        Listed::Many(v) => v,
        Listed::One(s) => vec![s],
    };
    if a.id == "none" || entries.iter().any(|e| e == "no new bans") {
        return Page::NoNewBans;
    }
    let ips: Vec<IpAddr> = entries
        .iter()
        .filter_map(|e| e.trim().parse().ok())
        .collect();
    if ips.is_empty() && !entries.is_empty() || !(200..300).contains(&status) {
        return Page::Refused(format!(
            "status {status}: {} ({})",
            entries.first().map_or("", String::as_str),
            a.id
        ));
    }
    Page::Bans {
        full: entries.len() >= PAGE,
        ips,
        next: a.id,
    }
}

/// Starts polling on the current runtime.
pub fn spawn(cfg: Apiban, bans: Arc<Bans>) {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("sipedge/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("apiban: cannot make an HTTP client: {e}; not polled");
                return;
            }
        };
        let mut poll = Poll {
            cfg,
            bans,
            client,
            id: None,
            last_error: None,
        };
        loop {
            poll.once().await;
            tokio::time::sleep(poll.cfg.interval).await;
        }
    });
}

struct Poll {
    cfg: Apiban,
    bans: Arc<Bans>,
    client: reqwest::Client,
    /// The ID to ask after; `None` before the first page.
    id: Option<String>,
    /// The last failure logged: the same one is not logged at every poll.
    last_error: Option<String>,
}

impl Poll {
    async fn once(&mut self) {
        let key = match std::fs::read_to_string(&self.cfg.key_file) {
            Ok(k) => k.trim().to_owned(),
            Err(e) => {
                return self.failed(format!(
                    "{}: cannot read the key: {e}",
                    self.cfg.key_file.display()
                ));
            }
        };
        let gap = PAGE_GAP.min(self.cfg.interval);
        let mut added = 0;
        for page in 0..MAX_PAGES {
            if page > 0 {
                tokio::time::sleep(gap).await;
            }
            let url = match &self.id {
                Some(id) => format!("{}/{key}/banned/{id}", self.cfg.url),
                None => format!("{}/{key}/banned", self.cfg.url),
            };
            let answer = match self.client.get(&url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.bytes().await {
                        Ok(b) => read(status, &b),
                        Err(e) => Page::Refused(format!("reading the answer: {e}")),
                    }
                }
                // The URL holds the key: the error is logged without it.
                Err(e) => Page::Refused(e.without_url().to_string()),
            };
            match answer {
                Page::Bans { ips, next, full } => {
                    let now = Instant::now();
                    for ip in &ips {
                        self.bans
                            .ban(*ip, self.cfg.ban_time, Reason::Apiban, None, now);
                    }
                    added += ips.len();
                    self.id = Some(next);
                    if !full {
                        break;
                    }
                }
                Page::NoNewBans => break,
                Page::Refused(why) => return self.failed(why),
            }
        }
        if self.last_error.take().is_some() || added > 0 {
            tracing::info!(
                addresses = added,
                id = self.id.as_deref().unwrap_or(""),
                "apiban: polled"
            );
        }
    }

    fn failed(&mut self, why: String) {
        if self.last_error.as_ref() != Some(&why) {
            tracing::warn!("apiban: {why}; the addresses already listed stay banned");
            self.last_error = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn answers_as_the_api_gives_them() {
        assert_eq!(
            read(
                200,
                br#"{"ipaddress":["1.2.3.4","2001:db8::7"],"ID":"987654321"}"#
            ),
            Page::Bans {
                ips: vec![ip("1.2.3.4"), ip("2001:db8::7")],
                next: "987654321".into(),
                full: false
            }
        );
        let full: Vec<String> = (0..250)
            .map(|i| format!("\"10.0.{}.{}\"", i / 200, i % 200))
            .collect();
        let body = format!(r#"{{"ipaddress":[{}],"ID":"12"}}"#, full.join(","));
        assert!(matches!(
            read(200, body.as_bytes()),
            Page::Bans { full: true, .. }
        ));
        for none in [
            &br#"{"ipaddress":["no new bans"], "ID":"none"}"#[..],
            br#"{"ipaddress":"no new bans", "ID":"none"}"#,
        ] {
            assert_eq!(read(400, none), Page::NoNewBans);
            assert_eq!(read(200, none), Page::NoNewBans);
        }
        for (status, refused) in [
            (403, &br#"{"ipaddress":"none", "ID":"unauthorized"}"#[..]),
            (
                429,
                br#"{"ipaddress":"rate limit exceeded", "ID":"unauthorized"}"#,
            ),
            (502, b"<html>Bad Gateway</html>"),
            (200, b""),
        ] {
            assert!(
                matches!(read(status, refused), Page::Refused(_)),
                "{status}"
            );
        }
        // A stray entry is skipped, the rest taken.
        assert_eq!(
            read(200, br#"{"ipaddress":["1.2.3.4","bogus"],"ID":"5"}"#),
            Page::Bans {
                ips: vec![ip("1.2.3.4")],
                next: "5".into(),
                full: false
            }
        );
    }
}
