//! The words that give a message away when its headers do not: bounce diagnostics,
//! out-of-office notes, unsubscribe requests and "has left the company", in English,
//! German, French, Spanish, Italian, Dutch and Portuguese. All lower case; matched
//! against lower-cased text.
//!
//! Data only: no matching logic beyond [`any_in`].

/// Whether `text` (lower case) holds any of `phrases`.
pub(super) fn any_in(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|phrase| text.contains(phrase))
}

/// The receiver refused the sender (spam filter, reputation, policy), not the address.
pub(super) const BLOCKED: &[&str] = &[
    "spam",
    "blocked",
    "blacklist",
    "black list",
    "blocklist",
    "block list",
    "denylist",
    "reputation",
    "policy",
    "spamhaus",
    "spamcop",
    "barracuda",
    "not accepted from your ip",
    "rejected due to",
    "too many messages",
    "rate limit",
    "dmarc",
    "unauthenticated",
];

/// The address does not exist or is closed for good.
pub(super) const UNKNOWN_ADDRESS: &[&str] = &[
    "user unknown",
    "unknown user",
    "unknown recipient",
    "recipient unknown",
    "no such user",
    "no such recipient",
    "no such mailbox",
    "no mailbox here",
    "mailbox unavailable",
    "mailbox not found",
    "mailbox does not exist",
    "does not exist",
    "doesn't exist",
    "doesn't have a",
    "invalid recipient",
    "invalid mailbox",
    "not a valid mailbox",
    "recipient not found",
    "address not found",
    "unrouteable address",
    "account has been disabled",
    "account is disabled",
    "account disabled",
    "mailbox disabled",
    "mailbox is disabled",
    "account is no longer active",
];

/// The mailbox is full: a transient failure.
pub(super) const MAILBOX_FULL: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "exceeded storage",
    "exceeds the storage",
    "insufficient storage",
    "mailbox size limit",
];

/// A delivery is late, not failed.
pub(super) const DELAYED: &[&str] = &[
    "will keep trying",
    "will continue trying",
    "has not yet been delivered",
    "not yet been delivered",
    "delivery has been delayed",
    "message delayed",
    "delivery delayed",
];

/// The local parts mail servers send bounces from.
pub(super) const MAIL_SYSTEM_SENDERS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "mail-delivery-subsystem",
    "mail-daemon",
    "mdaemon",
];

/// Subjects of bounces that carry no report part.
pub(super) const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered mail",
    "returned mail",
    "mail delivery failed",
    "delivery status notification (failure)",
    "delivery failure",
    "failure notice",
    "mail delivery failure",
    "non remis",
    "unzustellbar",
    "nicht zustellbar",
    "no se puede entregar",
    "non recapitabile",
    "onbestelbaar",
    "não entregue",
];

/// Subjects of out-of-office and other automatic replies (after any `Re:`).
pub(super) const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto:",
    "out of office",
    "out of the office",
    "away from the office",
    "abwesenheitsnotiz",
    "automatische antwort",
    "abwesend",
    "réponse automatique",
    "absent",
    "absence",
    "respuesta automática",
    "fuera de la oficina",
    "risposta automatica",
    "fuori ufficio",
    "fuori sede",
    "automatisch antwoord",
    "afwezig",
    "resposta automática",
    "ausente",
    "fora do escritório",
];

/// Phrases that only an automatic reply writes (in a subject or a body).
pub(super) const AUTO_REPLY_BODIES: &[&str] = &[
    "this is an automatic reply",
    "this is an automated reply",
    "automatic reply",
    "auto-reply",
    "abwesenheitsnotiz",
    "automatische antwort",
    "réponse automatique",
    "respuesta automática",
    "risposta automatica",
    "automatisch antwoord",
    "resposta automática",
];

/// An absence announced with its end (`out of the office until`, `bis … nicht im
/// Büro`): both words of a pair in a body. A person who writes "I was out of the office"
/// is still a person.
pub(super) const ABSENCE_UNTIL: &[(&str, &str)] = &[
    ("out of the office", " until "),
    ("out of office", " until "),
    ("away from the office", " until "),
    ("on annual leave", " until "),
    ("nicht im büro", " bis "),
    ("abwesend", " bis "),
    ("absent du bureau", "jusqu"),
    ("absente du bureau", "jusqu"),
    ("fuera de la oficina", " hasta "),
    ("fuori ufficio", " fino "),
    ("niet op kantoor", " tot "),
    ("afwezig", " tot "),
    ("fora do escritório", " até "),
];

/// A person asking to hear no more.
pub(super) const UNSUBSCRIBE: &[&str] = &[
    // English
    "unsubscribe",
    "remove me",
    "take me off",
    "opt me out",
    "opt out",
    "opt-out",
    "stop emailing",
    "stop sending",
    "stop contacting",
    "do not contact me",
    "don't contact me",
    "do not email",
    "don't email",
    "no more emails",
    "no further emails",
    // German
    "abmelden",
    "austragen",
    "abbestellen",
    "aus ihrem verteiler",
    "aus dem verteiler",
    "entfernen sie mich",
    "löschen sie mich",
    "keine e-mails mehr",
    "keine emails mehr",
    "keine weiteren e-mails",
    "keine weiteren emails",
    "nicht mehr kontaktieren",
    "nicht mehr anschreiben",
    // French
    "désinscri",
    "desinscri",
    "désabonn",
    "desabonn",
    "retirez-moi",
    "retirez moi",
    "me retirer de",
    "supprimez-moi",
    "ne plus recevoir",
    "ne me contactez plus",
    // Spanish
    "darme de baja",
    "dar de baja",
    "denme de baja",
    "dénme de baja",
    "darse de baja",
    "no quiero recibir",
    "no me envíen",
    "no me envien",
    "elimínenme",
    "eliminenme",
    "quitarme de",
    "cancelar la suscripción",
    // Italian
    "cancellami",
    "cancellatemi",
    "disiscriv",
    "rimuovetemi",
    "rimuovermi",
    "toglietemi",
    "non voglio più ricevere",
    "non inviatemi",
    // Dutch
    "afmelden",
    "uitschrijven",
    "schrijf mij uit",
    "schrijf me uit",
    "verwijder mij",
    "verwijder me",
    "geen e-mails meer",
    "geen mails meer",
    // Portuguese
    "descadastr",
    "cancelar inscrição",
    "cancelar a inscrição",
    "remova-me",
    "me remova",
    "remover meu e-mail",
    "não quero receber",
    "nao quero receber",
    "não me enviem",
    "parar de receber",
];

/// The contact is gone from the company.
pub(super) const LEFT_COMPANY: &[&str] = &[
    // English
    "no longer with",
    "no longer work for",
    "no longer works for",
    "no longer working for",
    "no longer work at",
    "no longer works at",
    "no longer working at",
    "no longer employed",
    "no longer part of",
    "left the company",
    "left the organization",
    "left the organisation",
    "left the firm",
    // German
    "nicht mehr im unternehmen",
    "nicht mehr in unserem unternehmen",
    "nicht mehr bei uns",
    "das unternehmen verlassen",
    "unser unternehmen verlassen",
    "nicht mehr für uns tätig",
    "ausgeschieden",
    // French
    "ne fait plus partie",
    "ne travaille plus",
    "a quitté la société",
    "a quitté l'entreprise",
    "a quitté l’entreprise",
    // Spanish
    "ya no trabaja",
    "ya no forma parte",
    "dejó la empresa",
    "ha dejado la empresa",
    "ya no está en la empresa",
    // Italian
    "non lavora più",
    "non fa più parte",
    "ha lasciato l'azienda",
    "ha lasciato l’azienda",
    "ha lasciato la società",
    // Dutch
    "niet meer werkzaam",
    "niet langer werkzaam",
    "werkt niet meer",
    "heeft het bedrijf verlaten",
    "uit dienst",
    // Portuguese
    "não trabalha mais",
    "nao trabalha mais",
    "já não trabalha",
    "não faz mais parte",
    "deixou a empresa",
];

/// Reply and forward prefixes of a subject, per language.
pub(super) const SUBJECT_PREFIXES: &[&str] = &[
    "re:", "aw:", "wg:", "fw:", "fwd:", "tr:", "rv:", "r:", "res:", "antw:", "sv:", "vs:",
];
