//! Property tests for `parse`: any bytes are read or refused without a panic, and a
//! delivery status notification written from any recipient, action and status reads
//! back as them.

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

proptest! {
    /// A delivery status notification written from any recipient, action and status
    /// reads back as them, whatever the line endings.
    #[test]
    fn a_written_dsn_reads_back(
        local in "[a-z0-9][a-z0-9._+-]{0,20}",
        domain in "[a-z0-9][a-z0-9-]{0,11}\\.(example|com|de)",
        action in "(failed|delayed|delivered)",
        status in "[245]\\.[0-9]{1,2}\\.[0-9]{1,2}",
        crlf in any::<bool>(),
    ) {
        let address = format!("{local}@{domain}");
        let raw = format!(
            "From: MAILER-DAEMON@mx.example\nTo: bounces+x@acme.example\n\
             Subject: Undelivered Mail\nMIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"=_dsn_4Qw\"\n\n\
             --=_dsn_4Qw\nContent-Type: text/plain\n\nSorry.\n\n\
             --=_dsn_4Qw\nContent-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; mx.example\n\n\
             Final-Recipient: rfc822; {address}\nAction: {action}\nStatus: {status}\n\n--=_dsn_4Qw--\n"
        );
        let raw = if crlf { raw.replace('\n', "\r\n") } else { raw };
        let facts = parse(raw.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(facts.dsn.len(), 1);
        prop_assert_eq!(facts.dsn[0].final_recipient.as_deref(), Some(address.as_str()));
        prop_assert_eq!(facts.dsn[0].action.as_deref(), Some(action.as_str()));
        prop_assert_eq!(facts.dsn[0].status.as_deref(), Some(status.as_str()));
        prop_assert_eq!(facts.report_type.as_deref(), Some("delivery-status"));
    }
}
