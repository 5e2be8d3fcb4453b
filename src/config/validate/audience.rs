//! A campaign's audience: `include_reasons` and `match`.
//!
//! Part of the validator: records problems and warnings, builds nothing else.

use toml::Spanned;

use super::Validator;

impl Validator<'_> {
    /// `include_reasons`: only these churn reasons, lower case.
    pub(super) fn include_reasons(
        &mut self,
        raw: Option<Spanned<Vec<String>>>,
        _key: &str,
    ) -> Option<Vec<String>> {
        raw.map(|list| {
            list.into_inner()
                .into_iter()
                .map(|r| r.trim().to_lowercase())
                .collect()
        })
    }

    /// `match = { "fields.region" = "EMEA", country = "DE" }`.
    pub(super) fn matches(
        &mut self,
        raw: Option<Spanned<toml::Table>>,
        _key: &str,
    ) -> Vec<(String, String)> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        raw.into_inner()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
            .collect()
    }
}
