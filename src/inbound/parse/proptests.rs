//! Property tests for `parse`: any bytes are read or refused without a panic, and a
//! message is read whatever is appended to it.

use proptest::prelude::*;

use super::*;

proptest! {
    #[test]
    fn parse_never_panics_on_any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&raw);
    }

    #[test]
    fn parse_never_panics_on_mail_shaped_text(
        head in "(From|To|Subject|Content-Type|Message-ID|Auto-Submitted): [ -~]{0,60}",
        body in "[ -~\n>]{0,400}",
    ) {
        let raw = format!("{head}\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n{body}\n--b--\n");
        prop_assert!(parse(raw.as_bytes()).is_ok());
    }
}
