//! Property tests for the list reader: any bytes are read without a panic, every bad line
//! named by a line of the file, and addresses written one per line or in a CSV's email
//! column, in any of the shapes people paste, read back as written, once each, in order.

use proptest::prelude::*;

use super::*;

/// Valid addresses, in their normalized form.
fn address() -> impl Strategy<Value = String> {
    ("[a-z0-9][a-z0-9._+-]{0,12}", "[a-z0-9]{1,10}", "[a-z]{2,6}")
        .prop_map(|(local, host, tld)| format!("{local}@{host}.{tld}"))
}

/// An address as people paste it: quoted, with a display name, in capitals, padded.
fn pasted(address: &str, shape: u8) -> String {
    match shape % 5 {
        0 => address.to_string(),
        1 => format!("\"{address}\""),
        2 => format!("Some One <{address}>"),
        3 => address.to_uppercase(),
        _ => format!("  {address}\t"),
    }
}

proptest! {
    #[test]
    fn any_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(list) = read_list(&bytes, &CsvFormat::default()) {
            let lines = bytes.split(|&b| b == b'\n').count() as u64;
            prop_assert!(list.invalid.iter().all(|bad| bad.line >= 1 && bad.line <= lines));
        }
    }

    #[test]
    fn a_list_reads_back_as_written(
        addresses in proptest::collection::vec(address(), 1..30),
        shapes in proptest::collection::vec(any::<u8>(), 30),
        csv in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        if csv {
            text.push_str(&format!("name;Email;note{end}"));
        }
        for (address, shape) in addresses.iter().zip(&shapes) {
            let cell = pasted(address, *shape);
            if csv {
                let quoted = format!("\"{}\"", cell.replace('"', "\"\""));
                text.push_str(&format!("Ann;{quoted};x{end}"));
            } else {
                text.push_str(&format!("{cell}{end}"));
            }
        }
        let list = read_list(text.as_bytes(), &CsvFormat::default()).unwrap();
        let mut expected: Vec<String> = Vec::new();
        for address in &addresses {
            if !expected.contains(address) {
                expected.push(address.clone());
            }
        }
        prop_assert_eq!(&list.addresses, &expected);
        prop_assert_eq!(list.repeated as usize, addresses.len() - expected.len());
        prop_assert!(list.invalid.is_empty(), "{:?}", list.invalid);
        prop_assert_eq!(list.column.is_some(), csv);
    }
}
