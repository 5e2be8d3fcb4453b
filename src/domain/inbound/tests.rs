//! Table tests for `classify`: the standards decide first (feedback reports, DSN
//! Action/Status, Auto-Submitted), the words second, in the seven languages.

use super::*;

fn dsn(action: &str, status: &str, diagnostic: &str) -> Facts {
    Facts {
        from: Some("mailer-daemon@mx.example".to_string()),
        report_type: Some("delivery-status".to_string()),
        dsn: vec![DsnRecipient {
            final_recipient: Some("ann@client.example".to_string()),
            action: Some(action.to_string()).filter(|a| !a.is_empty()),
            status: Some(status.to_string()).filter(|s| !s.is_empty()),
            diagnostic: Some(diagnostic.to_string()).filter(|d| !d.is_empty()),
            ..DsnRecipient::default()
        }],
        ..Facts::default()
    }
}

fn reply(subject: &str, text: &str) -> Facts {
    Facts {
        from: Some("ann@client.example".to_string()),
        subject: subject.to_string(),
        text: text.to_string(),
        ..Facts::default()
    }
}

#[test]
fn delivery_status_codes_decide_before_words() {
    use Outcome::*;
    let table = [
        ("failed", "5.1.1", "550 5.1.1 user unknown", Bounce),
        ("failed", "5.1.2", "host not found", Bounce),
        ("failed", "5.1.10", "RecipientNotFound", Bounce),
        ("failed", "5.2.1", "account disabled", Bounce),
        ("failed", "5.2.2", "mailbox full", SoftBounce),
        ("failed", "4.2.2", "over quota", SoftBounce),
        ("failed", "4.4.7", "expired", SoftBounce),
        // Blocks are about the sender, whatever else the text says.
        (
            "failed",
            "5.7.1",
            "Requested action not taken: mailbox unavailable",
            Blocked,
        ),
        ("failed", "5.7.26", "unauthenticated email", Blocked),
        ("failed", "5.7.1", "user unknown", Blocked),
        ("failed", "5.1.8", "bad sender's system address", Blocked),
        // A generic status: the diagnostic's code, else its words.
        (
            "failed",
            "5.0.0",
            "550 5.1.1 <ann@client.example>: User unknown",
            Bounce,
        ),
        ("failed", "5.0.0", "550 5.7.1 rejected", Blocked),
        (
            "failed",
            "5.0.0",
            "554 rejected: listed at Spamhaus",
            Blocked,
        ),
        (
            "failed",
            "5.0.0",
            "554 delivery error: dd This user doesn't have a yahoo.com account",
            Bounce,
        ),
        ("failed", "5.0.0", "552 Mailbox is full", SoftBounce),
        ("failed", "", "550 5.7.1 Message rejected as spam", Blocked),
        ("failed", "", "550 5.1.1 no such user", Bounce),
        // A permanent failure nothing explains is counted, not trusted.
        (
            "failed",
            "5.5.0",
            "550 Administrative prohibition",
            SoftBounce,
        ),
        ("failed", "5.1.0", "address rejected", SoftBounce),
        ("delayed", "4.4.1", "connection timed out", Delayed),
        ("delivered", "2.0.0", "ok", Unrelated),
        ("relayed", "2.0.0", "", Unrelated),
    ];
    for (action, status, diagnostic, outcome) in table {
        let facts = dsn(action, status, diagnostic);
        let classification = classify(&facts);
        assert_eq!(
            classification.outcome, outcome,
            "{action} {status} {diagnostic}: {classification:?}"
        );
    }
}

#[test]
fn a_bounce_names_the_failed_recipient_never_the_sender() {
    let mut facts = dsn("failed", "5.1.1", "user unknown");
    facts.dsn[0].original_recipient = Some("ann.old@client.example".to_string());
    assert_eq!(
        classify(&facts).recipient.as_deref(),
        Some("ann.old@client.example"),
        "the address we sent to comes first"
    );
    facts.dsn[0].original_recipient = None;
    facts.dsn[0].final_recipient = None;
    let classification = classify(&facts);
    assert_eq!(classification.outcome, Outcome::Bounce);
    assert_eq!(classification.recipient, None, "not the mailer-daemon");
    facts.reported_recipients = vec!["ann@client.example".to_string()];
    assert_eq!(
        classify(&facts).recipient.as_deref(),
        Some("ann@client.example")
    );
}

#[test]
fn of_several_dsn_recipients_the_failed_one_counts() {
    let mut facts = dsn("delivered", "2.0.0", "");
    facts.dsn.push(DsnRecipient {
        final_recipient: Some("bob@client.example".to_string()),
        action: Some("failed".to_string()),
        status: Some("5.1.1".to_string()),
        ..DsnRecipient::default()
    });
    let classification = classify(&facts);
    assert_eq!(classification.outcome, Outcome::Bounce);
    assert_eq!(
        classification.recipient.as_deref(),
        Some("bob@client.example")
    );
    assert_eq!(classification.status.as_deref(), Some("5.1.1"));
}

#[test]
fn prose_bounces_without_a_dsn_part() {
    use Outcome::*;
    let table = [
        (
            "<a@b.example>:\nSorry, no mailbox here by that name. (#5.1.1)",
            Bounce,
        ),
        (
            "550 Requested action not taken: mailbox unavailable",
            Bounce,
        ),
        ("The recipient's mailbox does not exist", Bounce),
        (
            "550 5.7.1 Our system has detected an unusual rate of mail",
            Blocked,
        ),
        ("554 Your IP is on our block list", Blocked),
        ("552 mailbox is full", SoftBounce),
        (
            "I'm afraid I wasn't able to deliver your message.",
            SoftBounce,
        ),
        (
            "Your message has not yet been delivered. We will keep trying.",
            Delayed,
        ),
    ];
    for (text, outcome) in table {
        let facts = Facts {
            from: Some("MAILER-DAEMON@mx.example".to_lowercase()),
            subject: "failure notice".to_string(),
            text: text.to_string(),
            reported_recipients: vec!["a@b.example".to_string()],
            ..Facts::default()
        };
        let classification = classify(&facts);
        assert_eq!(
            classification.outcome, outcome,
            "{text}: {classification:?}"
        );
        assert_eq!(classification.recipient.as_deref(), Some("a@b.example"));
    }
    // A bounce's subject is enough to read it as one, whoever sent it.
    let facts = Facts {
        from: Some("relay@partner.example".to_string()),
        subject: "Undeliverable: A quick question".to_string(),
        text: "User unknown".to_string(),
        ..Facts::default()
    };
    assert_eq!(classify(&facts).outcome, Outcome::Bounce);
    assert_eq!(classify(&facts).recipient, None);
}

#[test]
fn feedback_reports_are_complaints_about_the_reported_recipient() {
    let mut facts = Facts {
        from: Some("fbl@provider.example".to_string()),
        report_type: Some("feedback-report".to_string()),
        feedback_type: Some("abuse".to_string()),
        reported_recipients: vec!["ann@client.example".to_string()],
        ..Facts::default()
    };
    let classification = classify(&facts);
    assert_eq!(classification.outcome, Outcome::Complaint);
    assert_eq!(
        classification.recipient.as_deref(),
        Some("ann@client.example")
    );
    facts.feedback_type = None;
    assert_eq!(classify(&facts).outcome, Outcome::Complaint);
    facts.feedback_type = Some("not-spam".to_string());
    assert_eq!(classify(&facts).outcome, Outcome::Unrelated);
    facts.feedback_type = Some("auth-failure".to_string());
    assert_eq!(classify(&facts).outcome, Outcome::Blocked);
}

#[test]
fn auto_submitted_and_vendor_marks_make_an_auto_reply() {
    let mut facts = reply("Re: A quick question", "Thanks, I'll read it on Monday.");
    assert_eq!(classify(&facts).outcome, Outcome::Reply);
    facts.auto_submitted = Some("no".to_string());
    assert_eq!(classify(&facts).outcome, Outcome::Reply, "`no` is a person");
    for value in ["auto-replied", "auto-generated", "auto-notified"] {
        facts.auto_submitted = Some(value.to_string());
        assert_eq!(classify(&facts).outcome, Outcome::AutoReply, "{value}");
    }
    facts.auto_submitted = None;
    facts.automatic = true;
    assert_eq!(classify(&facts).outcome, Outcome::AutoReply);
}

#[test]
fn out_of_office_subjects_and_bodies_in_seven_languages() {
    let subjects = [
        "Automatic reply: A quick question",
        "Out of Office: A quick question",
        "AW: Abwesenheitsnotiz: Kurze Frage",
        "Automatische Antwort: Kurze Frage",
        "Réponse automatique : Une question",
        "Absent du bureau",
        "Respuesta automática: Una pregunta",
        "Fuera de la oficina",
        "Risposta automatica: Una domanda",
        "Fuori ufficio",
        "Automatisch antwoord: Een vraag",
        "Afwezig: Een vraag",
        "Resposta automática: Uma pergunta",
        "Ausente: Uma pergunta",
    ];
    for subject in subjects {
        let facts = reply(subject, "Back on Monday.");
        assert_eq!(classify(&facts).outcome, Outcome::AutoReply, "{subject}");
    }
    let bodies = [
        "This is an automatic reply. I will read your message on Monday.",
        "I am out of the office until 4 January.",
        "Ich bin bis 4. Januar nicht im Büro.",
        "Je suis absent du bureau jusqu'au 4 janvier.",
        "Estoy fuera de la oficina hasta el 4 de enero.",
        "Sono fuori ufficio fino al 4 gennaio.",
        "Ik ben niet op kantoor tot 4 januari.",
        "Estou fora do escritório até 4 de janeiro.",
    ];
    for body in bodies {
        let facts = reply("Re: A quick question", body);
        assert_eq!(classify(&facts).outcome, Outcome::AutoReply, "{body}");
    }
    // A person mentioning an absence is still a person.
    for body in [
        "Sorry, I was out of the office last week. Yes, let's talk.",
        "War letzte Woche nicht im Büro; gerne nächste Woche.",
    ] {
        let facts = reply("Re: A quick question", body);
        assert_eq!(classify(&facts).outcome, Outcome::Reply, "{body}");
    }
}

#[test]
fn unsubscribe_requests_in_seven_languages() {
    let texts = [
        "Please remove me from your list.",
        "Unsubscribe",
        "STOP",
        "Take me off your mailing list, thanks.",
        "Bitte austragen.",
        "Bitte entfernen Sie mich aus Ihrem Verteiler.",
        "Ich möchte keine E-Mails mehr erhalten.",
        "Merci de me désinscrire.",
        "Je ne souhaite plus recevoir vos messages, merci de me retirer de votre liste.",
        "Por favor, darme de baja.",
        "No quiero recibir más correos.",
        "Cancellami dalla lista, grazie.",
        "Vorrei disiscrivermi.",
        "Graag afmelden.",
        "Wilt u mij uitschrijven?",
        "Quero descadastrar meu e-mail.",
        "Não quero receber mais e-mails.",
    ];
    for text in texts {
        let classification = classify(&reply("Re: A quick question", text));
        assert_eq!(classification.outcome, Outcome::Unsubscribe, "{text}");
        assert_eq!(
            classification.recipient.as_deref(),
            Some("ann@client.example")
        );
    }
    let subject_only = reply("Unsubscribe", "");
    assert_eq!(classify(&subject_only).outcome, Outcome::Unsubscribe);
}

#[test]
fn left_company_in_replies_and_auto_replies() {
    let texts = [
        "Ann is no longer with Contoso.",
        "Ann has left the company.",
        "Frau Berg hat das Unternehmen verlassen.",
        "Frau Berg ist nicht mehr im Unternehmen tätig.",
        "Mme Berg ne fait plus partie de la société.",
        "Ann ya no trabaja en Contoso.",
        "Ann non lavora più presso di noi.",
        "Ann is niet meer werkzaam bij Contoso.",
        "Ann não trabalha mais na Contoso.",
    ];
    for text in texts {
        let human = reply("Re: A quick question", text);
        assert_eq!(classify(&human).outcome, Outcome::LeftCompany, "{text}");
        let automatic = Facts {
            auto_submitted: Some("auto-replied".to_string()),
            ..reply("Automatic reply: A quick question", text)
        };
        assert_eq!(classify(&automatic).outcome, Outcome::LeftCompany, "{text}");
    }
    // An automatic note asking to update the list is about the contact, not an opt-out.
    let automatic = Facts {
        auto_submitted: Some("auto-replied".to_string()),
        ..reply(
            "Automatic reply",
            "Ann has left the company. Please remove me.",
        )
    };
    assert_eq!(classify(&automatic).outcome, Outcome::LeftCompany);
}

#[test]
fn any_other_human_answer_is_a_reply() {
    for text in [
        "Actually, we're reviewing vendors again. Call me?",
        "Nicht jetzt, vielleicht im Frühjahr.",
        "",
    ] {
        let classification = classify(&reply("Re: A quick question", text));
        assert_eq!(classification.outcome, Outcome::Reply, "{text}");
        assert_eq!(
            classification.recipient.as_deref(),
            Some("ann@client.example")
        );
    }
    assert_eq!(classify(&Facts::default()).outcome, Outcome::Unrelated);
}

#[test]
fn enhanced_codes_are_found_in_text() {
    assert_eq!(
        enhanced_code("550-5.2.1 The email").as_deref(),
        Some("5.2.1")
    );
    assert_eq!(enhanced_code("(#5.1.1)").as_deref(), Some("5.1.1"));
    assert_eq!(enhanced_code("host 192.168.1.1 said 550"), None);
    assert_eq!(enhanced_code("on 4.12.2026"), None);
}
