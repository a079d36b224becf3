//! Choosing the response the caller gets when no destination succeeded
//! (RFC 3261 §16.7 step 6).

/// The best final response so far: its code and, when a destination sent
/// it, the bytes to relay (our Via already removed); `None` for one this
/// edge stands in for (a 408 after a timeout).
#[derive(Debug)]
pub(super) struct Best {
    pub code: u16,
    pub bytes: Option<Vec<u8>>,
}

/// How good a final response is to send upstream; higher wins.
///
/// §16.7 step 6: any 6xx first; otherwise the lowest class; within 4xx,
/// the responses that tell the caller how to try again (401, 407, 415,
/// 420, 484) before the others. Among equals the first one received stays.
fn rank(code: u16) -> (u8, u8) {
    let class = (code / 100).min(9) as u8;
    if class == 6 {
        return (10, 0);
    }
    let informative = matches!(code, 401 | 407 | 415 | 420 | 484);
    (9 - class, u8::from(informative))
}

impl Best {
    /// Whether a final response with `code` should replace `current`.
    pub fn replaces(current: Option<&Best>, code: u16) -> bool {
        match current {
            None => true,
            Some(b) => rank(code) > rank(b.code),
        }
    }
}

/// The status line a relayed response goes upstream with: a 503 becomes a
/// 500, because a proxy that forwards a 503 tells the caller that it, the
/// proxy, is unavailable for every request (§16.7 step 6, §21.5.4).
pub(super) fn upstream_status(code: u16) -> Option<&'static [u8]> {
    (code == 503).then_some(&b"SIP/2.0 500 Server Internal Error"[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(codes: &[u16]) -> u16 {
        let mut b: Option<Best> = None;
        for &code in codes {
            if Best::replaces(b.as_ref(), code) {
                b = Some(Best { code, bytes: None });
            }
        }
        b.map_or(0, |b| b.code)
    }

    #[test]
    fn sixxx_wins_then_the_lowest_class_then_informative_4xx() {
        assert_eq!(best(&[503, 486, 603]), 603);
        assert_eq!(best(&[503, 404]), 404);
        assert_eq!(best(&[302, 404, 500]), 302);
        assert_eq!(best(&[404, 407, 480]), 407);
        assert_eq!(best(&[480, 404]), 480, "first of equals stays");
        assert_eq!(best(&[408, 503, 500]), 408);
        assert_eq!(best(&[503, 500]), 503);
    }

    #[test]
    fn only_503_is_turned_into_500() {
        assert!(upstream_status(503).is_some());
        assert!(upstream_status(500).is_none());
        assert!(upstream_status(486).is_none());
    }
}
