//! `sipedge ctl`: the admin API for the shell, so an operator (or a health
//! script of a BGP speaker) needs neither curl nor JSON to drain a server or
//! ask whether the node can serve.

mod http;
mod table;

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `sipedge ctl` arguments.
#[derive(Args, Debug)]
pub struct Ctl {
    /// The admin HTTP address (`HOST:PORT`); default: `[admin] listen` of `--config`.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub admin: Option<String>,
    /// A configuration file to read `[admin] listen` (and the API's
    /// credentials, `token_file` or `user` and `password_file`) from.
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A file holding the admin API's bearer token (default: `[admin]
    /// token_file` of `--config`).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON as it is instead of a table or a line.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `sipedge ctl` subcommands.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// List every destination: state, latency, last probe, calls.
    Destinations,
    /// Set a destination active, inactive (held by hand) or probing.
    Set {
        /// The edge's name.
        edge: String,
        /// The destination's 0-based index or its URI as configured.
        dest: String,
        /// `active`, `inactive` or `probing`.
        state: String,
    },
    /// Print the node's health; exit 0 when it can route, 1 when not, 2 when
    /// the admin server does not answer.
    Health,
    /// Make the node read its config file again and apply it: print what
    /// changed and what needs a restart; exit 1 with the file's errors
    /// when it does not check (the running config stays).
    Reload,
    /// List the node's bans (sources that flooded an edge, banned by hand,
    /// listed by APIBAN), ban an address, or lift a ban.
    Bans {
        /// `list` (the default), `add` or `remove`.
        #[command(subcommand)]
        action: Option<BansAction>,
        /// List the APIBAN feed's addresses too.
        #[arg(long)]
        all: bool,
    },
}

/// `sipedge ctl bans` subcommands.
#[derive(Subcommand, Debug)]
pub enum BansAction {
    /// List the bans in force.
    List,
    /// Ban an address on every edge of the node for a while (replacing
    /// any ban it has).
    Add {
        /// The IP address.
        address: String,
        /// How long: seconds, or with a unit (`90s`, `30m`, `12h`, `7d`).
        duration: String,
    },
    /// Lift an address's ban.
    Remove {
        /// The IP address.
        address: String,
    },
}

/// A duration as `ctl bans add` takes it, in seconds.
fn seconds(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 600, 90s, 30m, 12h or 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("{text:?} is not a duration of at least one second"))
}

/// Exit code when the server answers with an error (or `/health` says 503).
const EXIT_REFUSED: u8 = 1;
/// Exit code when there is no answer (or no address to ask).
const EXIT_UNREACHABLE: u8 = 2;

/// Runs `sipedge ctl`.
pub fn run(ctl: &Ctl) -> ExitCode {
    let (admin, authorization) = match admin_address(ctl) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sipedge ctl: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let (method, path, body) = match &ctl.action {
        Action::Bans { action, .. } => match action {
            None | Some(BansAction::List) => ("GET", "/api/bans".to_owned(), None),
            Some(BansAction::Add { address, duration }) => match seconds(duration) {
                Ok(s) => (
                    "POST",
                    "/api/bans".to_owned(),
                    Some(serde_json::json!({ "address": address, "seconds": s }).to_string()),
                ),
                Err(e) => {
                    eprintln!("sipedge ctl: {e}");
                    return ExitCode::from(EXIT_REFUSED);
                }
            },
            Some(BansAction::Remove { address }) => (
                "DELETE",
                format!("/api/bans/{}", http::encode_segment(address)),
                None,
            ),
        },
        Action::Destinations => ("GET", "/api/destinations".to_owned(), None),
        Action::Health => ("GET", "/health".to_owned(), None),
        Action::Reload => ("POST", "/api/reload".to_owned(), None),
        Action::Set { edge, dest, state } => (
            "POST",
            format!(
                "/api/destinations/{}/{}",
                http::encode_segment(edge),
                http::encode_segment(dest)
            ),
            Some(serde_json::json!({ "state": state }).to_string()),
        ),
    };
    let response = match http::request(
        &admin,
        authorization.as_deref(),
        method,
        &path,
        body.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sipedge ctl: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    if let Action::Health = ctl.action {
        println!("{}", response.text().trim_end());
        return match response.status {
            200 => ExitCode::SUCCESS,
            _ => ExitCode::from(EXIT_REFUSED),
        };
    }
    if response.status != 200 {
        eprintln!(
            "sipedge ctl: {} {}: {}",
            response.status,
            response.reason,
            error_message(&response.body)
        );
        return ExitCode::from(EXIT_REFUSED);
    }
    if ctl.json {
        println!("{}", response.text().trim_end());
        return ExitCode::SUCCESS;
    }
    let value: serde_json::Value = match serde_json::from_slice(&response.body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sipedge ctl: the answer is not JSON: {e}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    match &ctl.action {
        Action::Destinations => print!("{}", table::destinations(&value)),
        Action::Set { edge, .. } => println!("{}", table::set_result(edge, &value)),
        Action::Reload => print!("{}", table::reload_result(&value)),
        Action::Bans { action, all } => match action {
            None | Some(BansAction::List) => print!("{}", table::bans(&value, *all)),
            Some(BansAction::Add { .. }) => println!(
                "{} banned for {} s",
                value["address"].as_str().unwrap_or("-"),
                value["expires_in"]
            ),
            Some(BansAction::Remove { address }) => println!("{address}: ban lifted"),
        },
        Action::Health => {}
    }
    ExitCode::SUCCESS
}

/// `--admin`, else `[admin] listen` of `--config` (a wildcard listen
/// address is asked on loopback); with the `Authorization` to send: the
/// token of `--token-file`, else the credentials `--config` names.
fn admin_address(ctl: &Ctl) -> Result<(String, Option<String>), String> {
    let from_file = match &ctl.config {
        Some(path) => admin_of(path)?,
        None => None,
    };
    let authorization = match (&ctl.token_file, &from_file) {
        (Some(p), _) => crate::admin::authorization(&edge::config::Admin {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            token_file: Some(p.clone()),
            basic: None,
        })?,
        (None, Some(a)) => crate::admin::authorization(a)?,
        (None, None) => None,
    };
    if let Some(a) = &ctl.admin {
        return Ok((a.clone(), authorization));
    }
    let Some(path) = &ctl.config else {
        return Err(
            "give the admin address with --admin HOST:PORT, or a config file with --config FILE"
                .into(),
        );
    };
    let Some(admin) = from_file else {
        return Err(format!(
            "{} has no [admin] listen: the admin API is off (or give --admin HOST:PORT)",
            path.display()
        ));
    };
    let mut addr = admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok((addr.to_string(), authorization))
}

/// The `[admin]` table of the config file at `path`. Only it is read: the
/// rest of the file may well be what a `ctl reload` is about to be told
/// is wrong.
fn admin_of(path: &std::path::Path) -> Result<Option<edge::config::Admin>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let file = path.display().to_string();
    edge::config::admin_of(&text, &file).map_err(|e| e.to_string())
}

/// The `error` of an API error body, else the body as text.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ban_durations() {
        assert_eq!(super::seconds("600"), Ok(600));
        assert_eq!(super::seconds("90s"), Ok(90));
        assert_eq!(super::seconds("30m"), Ok(1800));
        assert_eq!(super::seconds("12h"), Ok(43_200));
        assert_eq!(super::seconds("7d"), Ok(604_800));
        for bad in ["", "0", "m", "5w", "1.5h", "-3"] {
            assert!(super::seconds(bad).is_err(), "{bad:?}");
        }
    }
}
