//! The `[dkim]` section: selector, signing domain and key file, and an optional second
//! key; a domain that does not align with the From address is a warning.
//!
//! Part of the validator: it asks whether the key files exist, and reads nothing else.

use toml::Spanned;

use super::super::{Dkim, DkimKey, raw};
use super::Validator;

impl Validator<'_> {
    pub(super) fn dkim(
        &mut self,
        raw: Spanned<raw::RawDkim>,
        from_domain: Option<&str>,
    ) -> Option<Dkim> {
        let span = raw.span();
        let raw = raw.into_inner();
        if let (Some(domain), Some(from)) = (&raw.domain, from_domain) {
            let d = domain
                .get_ref()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let from = from.to_ascii_lowercase();
            // Relaxed DMARC alignment: the From domain, or a domain it is under.
            if !d.is_empty() && from != d && !from.ends_with(&format!(".{d}")) {
                self.warning(
                    &domain.span(),
                    "dkim.domain",
                    format!(
                        "\"{d}\" does not match the From address's domain \"{from}\": DMARC needs them to align, so receivers may treat the signature as no signature; sign with domain = \"{from}\" (or a domain it is under)"
                    ),
                );
            }
        }
        let second = match (raw.second_selector, raw.second_key_file) {
            (None, None) => None,
            (Some(selector), Some(key_file)) => {
                let path = self.resolve(key_file.get_ref());
                if raw
                    .selector
                    .as_ref()
                    .is_some_and(|first| first.get_ref() == selector.get_ref())
                {
                    self.problem(
                        Some(&selector.span()),
                        "dkim.second_selector",
                        "is the same as `selector`; each key needs its own selector (its own DNS record), e.g. \"winback-ed\"",
                    );
                    None
                } else if path.is_file() {
                    Some(DkimKey {
                        selector: selector.into_inner(),
                        key_file: path,
                    })
                } else {
                    self.problem(
                        Some(&key_file.span()),
                        "dkim.second_key_file",
                        format!("{} does not exist", path.display()),
                    );
                    None
                }
            }
            (Some(only), None) | (None, Some(only)) => {
                self.problem(
                    Some(&only.span()),
                    "dkim.second_selector",
                    "a second signature needs both `second_selector` and `second_key_file`; set both, or remove both",
                );
                None
            }
        };
        let selector = self.required(
            raw.selector,
            Some(&span),
            "dkim.selector",
            "write the DNS selector, e.g. \"winback\"",
        );
        let domain = self.required(
            raw.domain,
            Some(&span),
            "dkim.domain",
            "write the signing domain, e.g. \"acme.example\"",
        );
        let key_file = self.required(
            raw.key_file,
            Some(&span),
            "dkim.key_file",
            "write the path of the PEM private key",
        );
        let key_file = key_file.and_then(|k| {
            let path = self.resolve(k.get_ref());
            if path.is_file() {
                Some(path)
            } else {
                self.problem(
                    Some(&k.span()),
                    "dkim.key_file",
                    format!("{} does not exist", path.display()),
                );
                None
            }
        });
        Some(Dkim {
            selector: selector?.into_inner(),
            domain: domain?.into_inner(),
            key_file: key_file?,
            second,
        })
    }
}
