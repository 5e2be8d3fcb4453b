//! How the big CRMs and spreadsheets name the columns winback reads (HubSpot, Salesforce
//! and its `Object: Field` report headers, Pipedrive's `Object - Field`, Excel files in
//! English and German), and which columns merely look like one. Plain tables and
//! lookups over names already passed through `normalize_header`.

use crate::config::clients::Field;

/// Whole header names, normalized, for each field, best first. The field's own name comes
/// before these (see [`recognise`]). Only names that cannot mean anything else: a `Close
/// Date` may be when someone became a customer, so it is read as the churn date only when
/// `[clients] columns` says so.
const SPELLINGS: &[(Field, &[&str])] = &[
    (
        Field::Email,
        &[
            "email",
            "emailaddress",
            "emailadresse",
            "mail",
            "mailadresse",
            "primaryemail",
            "businessemail",
            "workemail",
            // Pipedrive's `Person - Email - Work`: the work address of a B2B contact.
            "emailwork",
        ],
    ),
    (
        Field::ChurnedAt,
        &[
            "churned",
            "churndate",
            "churnedon",
            "datechurned",
            "lostdate",
            "losttime",
            "lostat",
            "loston",
            "closedlostdate",
            "cancellationdate",
            "cancelledat",
            "canceledat",
            "cancelledon",
            "canceledon",
            "contractenddate",
            "contractend",
            "kündigungsdatum",
            "vertragsende",
            "abwanderungsdatum",
            "verlorenam",
        ],
    ),
    (
        Field::Name,
        &[
            "fullname",
            "contactname",
            "personname",
            "kontaktname",
            "vollständigername",
            "ansprechpartner",
        ],
    ),
    (
        Field::FirstName,
        &["firstname", "first", "givenname", "forename", "vorname"],
    ),
    (
        Field::LastName,
        &["lastname", "last", "surname", "familyname", "nachname"],
    ),
    (
        Field::Company,
        &[
            "companyname",
            "accountname",
            "organization",
            "organisation",
            "organizationname",
            "organisationname",
            "associatedcompany",
            "account",
            "firma",
            "firmenname",
            "unternehmen",
            "unternehmensname",
        ],
    ),
    (
        Field::ChurnReason,
        &[
            "churnreason",
            "lostreason",
            "lossreason",
            "closedlostreason",
            "reasonlost",
            "reasonforloss",
            "cancellationreason",
            "reason",
            "kündigungsgrund",
            "verlustgrund",
            "abwanderungsgrund",
            "grund",
        ],
    ),
    (Field::Timezone, &["timezone", "tz", "zeitzone"]),
    (
        Field::Country,
        &[
            "country/region",
            "countrycode",
            "countryregion",
            "mailingcountry",
            "billingcountry",
            "land",
        ],
    ),
    (
        Field::ReturnedAt,
        &[
            "returned",
            "returnedon",
            "returndate",
            "wonbackat",
            "wonbackon",
            "wonbackdate",
            "reactivatedat",
            "reactivatedon",
            "reactivationdate",
            "rückkehrdatum",
        ],
    ),
];

/// The people a report's `Object: Field` header may describe: their fields are theirs.
const PEOPLE: &[&str] = &[
    "contact", "person", "lead", "kontakt", "customer", "client", "kunde",
];
/// Companies: their name is the company.
const COMPANIES: &[&str] = &[
    "account",
    "organization",
    "organisation",
    "company",
    "firma",
    "unternehmen",
];
/// Deals, whose dates and reasons are the churn's.
const DEALS: &[&str] = &["deal", "opportunity", "opportunities", "verkaufschance"];

/// Words that make a column look like a field it does not feed (`Email 2`, `Work Email`,
/// `Billing Country`), normalized.
const LOOKALIKES: &[(Field, &[&str])] = &[
    (Field::Email, &["email"]),
    (
        Field::ChurnedAt,
        &["churn", "lostdate", "losttime", "closedate", "enddate"],
    ),
    (Field::FirstName, &["firstname", "vorname"]),
    (Field::LastName, &["lastname", "nachname", "surname"]),
    (Field::Company, &["company", "firma"]),
    (Field::ChurnReason, &["lostreason", "lossreason"]),
    (Field::Timezone, &["timezone", "zeitzone"]),
    (Field::Country, &["country"]),
    (Field::ReturnedAt, &["returned", "wonback"]),
];

/// The field a header names on its own and how well (0 best), if any. `name` is the header
/// as written, `normal` its normalized form.
pub(super) fn recognise(name: &str, normal: &str) -> Option<(Field, u8)> {
    if let Some(field) = Field::ALL
        .into_iter()
        .find(|f| f.as_str().replace('_', "") == normal)
    {
        return Some((field, 0));
    }
    if let Some(field) = spelled(normal) {
        return Some((field, 1));
    }
    // `Contact: Email`, `Person - Email`, `Account: Account Name`, `Deal - Lost reason`.
    let (object, rest) = name.split_once(':').or_else(|| name.split_once(" - "))?;
    let object = super::normalize_header(object);
    let rest = super::normalize_header(rest);
    let field = Field::ALL
        .into_iter()
        .find(|f| f.as_str().replace('_', "") == rest)
        .or_else(|| spelled(&rest));
    if PEOPLE.contains(&object.as_str()) {
        return field.map(|field| (field, 2));
    }
    if COMPANIES.contains(&object.as_str()) {
        let is_name = rest == "name" || field == Some(Field::Company);
        return match field {
            _ if is_name => Some((Field::Company, 2)),
            Some(field @ (Field::Country | Field::Timezone)) => Some((field, 3)),
            _ => None,
        };
    }
    if DEALS.contains(&object.as_str()) {
        return match field {
            Some(field @ (Field::ChurnedAt | Field::ChurnReason | Field::ReturnedAt)) => {
                Some((field, 2))
            }
            _ => None,
        };
    }
    None
}

fn spelled(normal: &str) -> Option<Field> {
    SPELLINGS
        .iter()
        .find(|(_, names)| names.contains(&normal))
        .map(|(field, _)| *field)
}

/// Words of a column that flags contacts who must not be mailed (HubSpot's `Unsubscribed
/// from all email`, Salesforce's `Email Opt Out` and `HasOptedOutOfEmail`, a hard bounce),
/// normalized.
const OPT_OUT_FLAGS: &[&str] = &["optout", "optedout", "unsubscribe", "bounce", "donotemail"];

/// Whether a header is an opt-out or bounce flag: never an address, whatever it mentions.
pub(super) fn is_opt_out_flag(normal: &str) -> bool {
    OPT_OUT_FLAGS.iter().any(|word| normal.contains(word))
}

/// The field a header that feeds none seems to be about (`Email 2`, `Secondary Email`).
pub(super) fn looks_like(normal: &str) -> Option<Field> {
    LOOKALIKES
        .iter()
        .find(|(_, words)| words.iter().any(|word| normal.contains(word)))
        .map(|(field, _)| *field)
}

#[cfg(test)]
mod tests {
    use super::super::normalize_header;
    use super::*;

    #[test]
    fn the_crms_spellings_are_recognised() {
        let cases = [
            ("email", Some(Field::Email)),
            ("Email", Some(Field::Email)),
            ("E-mail", Some(Field::Email)),
            ("Email Address", Some(Field::Email)),
            ("E-Mail-Adresse", Some(Field::Email)),
            ("Contact: Email", Some(Field::Email)),
            ("Person - Email", Some(Field::Email)),
            ("Person - Email - Work", Some(Field::Email)),
            ("Person - Email - Home", None),
            ("Account Owner: Email", None),
            ("Contact Owner", None),
            ("churned_at", Some(Field::ChurnedAt)),
            ("Churned At", Some(Field::ChurnedAt)),
            ("Close Date", None),
            ("Opportunity: Close Date", None),
            ("Closed Lost Date", Some(Field::ChurnedAt)),
            ("Deal - Lost time", Some(Field::ChurnedAt)),
            ("Kündigungsdatum", Some(Field::ChurnedAt)),
            ("Name", Some(Field::Name)),
            ("Full Name", Some(Field::Name)),
            ("Person - Name", Some(Field::Name)),
            ("First Name", Some(Field::FirstName)),
            ("FirstName", Some(Field::FirstName)),
            ("Contact: First Name", Some(Field::FirstName)),
            ("Vorname", Some(Field::FirstName)),
            ("Last Name", Some(Field::LastName)),
            ("Nachname", Some(Field::LastName)),
            ("Company", Some(Field::Company)),
            ("Company Name", Some(Field::Company)),
            ("Account Name", Some(Field::Company)),
            ("Account: Account Name", Some(Field::Company)),
            ("Organization - Name", Some(Field::Company)),
            ("Firma", Some(Field::Company)),
            ("Associated Company", Some(Field::Company)),
            ("Lost Reason", Some(Field::ChurnReason)),
            ("Deal - Lost reason", Some(Field::ChurnReason)),
            ("Opportunity: Loss Reason", Some(Field::ChurnReason)),
            ("Kündigungsgrund", Some(Field::ChurnReason)),
            ("Time Zone", Some(Field::Timezone)),
            ("Zeitzone", Some(Field::Timezone)),
            ("Country/Region", Some(Field::Country)),
            ("Country", Some(Field::Country)),
            ("Land", Some(Field::Country)),
            ("Account: Billing Country", Some(Field::Country)),
            ("Returned At", Some(Field::ReturnedAt)),
            ("Won back date", Some(Field::ReturnedAt)),
            ("Record ID", None),
            ("Plan", None),
            ("Deal - Title", None),
            ("Email 2", None),
        ];
        for (header, expected) in cases {
            let found = recognise(header, &normalize_header(header)).map(|(field, _)| field);
            assert_eq!(found, expected, "{header}");
        }
    }

    #[test]
    fn lookalikes_are_noticed() {
        let cases = [
            ("Email 2", Some(Field::Email)),
            ("Secondary Email", Some(Field::Email)),
            ("Person - Email - Home", Some(Field::Email)),
            ("Billing Country", Some(Field::Country)),
            ("Close Date", Some(Field::ChurnedAt)),
            ("Company Domain Name", Some(Field::Company)),
            ("Plan", None),
            ("Record ID", None),
        ];
        for (header, expected) in cases {
            assert_eq!(looks_like(&normalize_header(header)), expected, "{header}");
        }
    }
}
