//! Every sample under `tests/corpus/` with the exact feedback extracted from it, read once with
//! the line endings as stored (LF) and once with CRLF, as IMAP delivers them.

use emailengine_feedback::{
    BounceRecord, Feedback, PartFacts, Placement, bounce_listing, candidates,
    candidates_from_headers, detect, parse_bounce, parse_complaint, parse_delivery_report,
};
use serde_json::{Value, json};

const INBOX: Placement = Placement {
    inbox: true,
    junk: false,
};
const JUNK: Placement = Placement {
    inbox: false,
    junk: true,
};

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Bounce,
    DeliveryReport,
    Complaint,
    None,
}

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for &b in raw {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn classify(raw: &[u8], placement: Placement) -> (Kind, Value) {
    match detect(raw, placement) {
        Feedback::Bounce(b) => (Kind::Bounce, serde_json::to_value(b).unwrap()),
        Feedback::DeliveryReport(r) => (Kind::DeliveryReport, serde_json::to_value(r).unwrap()),
        Feedback::Complaint(c) => (Kind::Complaint, serde_json::to_value(c).unwrap()),
        Feedback::None => (Kind::None, Value::Null),
    }
}

/// Asserts the kind and the exact JSON (key order included) for both line-ending variants, and
/// that the direct parsers agree with `detect`.
fn check(name: &str, placement: Placement, kind: Kind, expected: Value) {
    let stored = load(name);
    for raw in [stored.clone(), with_crlf(&stored)] {
        let (got_kind, got) = classify(&raw, placement);
        assert_eq!(got_kind, kind, "{name}");
        assert_eq!(
            serde_json::to_string_pretty(&got).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap(),
            "{name}"
        );
        let direct = match kind {
            Kind::Bounce => parse_bounce(&raw).map(|b| serde_json::to_value(b).unwrap()),
            Kind::DeliveryReport => {
                parse_delivery_report(&raw).map(|r| serde_json::to_value(r).unwrap())
            }
            Kind::Complaint => parse_complaint(&raw).map(|c| serde_json::to_value(c).unwrap()),
            Kind::None => None,
        };
        assert_eq!(direct.unwrap_or(Value::Null), expected, "{name}");
    }
}

fn header_section(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(raw.len(), |p| p + 2);
    &raw[..end]
}

#[test]
fn header_only_candidates_match_full_parse() {
    // (sample, content types a BODYSTRUCTURE would list, expected header-only verdict)
    let cases: &[(&str, &[&str], bool)] = &[
        ("amazon-ses.eml", &[], true),
        ("exchange-legacy.eml", &[], true),
        ("exchange-o365.eml", &[], true),
        ("exim.eml", &[], true),
        ("generic-5xx.eml", &[], true),
        ("gmail-legacy.eml", &[], true),
        ("gmail.eml", &[], true),
        ("postfix-dsn.eml", &[], true),
        ("postfix-headers-only.eml", &[], true),
        ("qmail.eml", &[], true),
        ("rfc3464-delayed.eml", &[], true),
        ("rfc3464-delivered.eml", &[], true),
        ("rfc3464-failed.eml", &[], true),
        ("sendmail-dsn.eml", &[], true),
        ("yahoo.eml", &[], true),
        ("zoho.eml", &[], true),
        ("arf-rfc5965.eml", &[], true),
        ("hotmail-complaint.eml", &[], false),
        (
            "hotmail-complaint.eml",
            &["text/plain", "message/rfc822"],
            true,
        ),
        ("autoreply.eml", &[], false),
    ];
    for (name, types, expected) in cases {
        let raw = load(name);
        let facts = PartFacts::from_content_types(types.iter().copied());
        let from_headers = candidates_from_headers(header_section(&raw), facts, INBOX);
        assert_eq!(from_headers.any(), *expected, "{name}");
        if *expected {
            assert_eq!(from_headers, candidates(&raw, INBOX), "{name}");
        }
    }
}

#[test]
fn only_inbox_and_junk_are_looked_at() {
    let sent = Placement::from_special_use(Some("\\Sent"));
    for name in [
        "postfix-dsn.eml",
        "rfc3464-delivered.eml",
        "arf-rfc5965.eml",
        "exim.eml",
    ] {
        assert_eq!(detect(&load(name), sent), Feedback::None, "{name}");
    }
}

#[test]
fn bounces_in_junk_are_found_but_complaints_are_not() {
    assert!(matches!(
        detect(&load("exim.eml"), JUNK),
        Feedback::Bounce(_)
    ));
    assert_eq!(detect(&load("arf-rfc5965.eml"), JUNK), Feedback::None);
    assert_eq!(detect(&load("hotmail-complaint.eml"), JUNK), Feedback::None);
}

#[test]
fn delivered_report_outside_inbox_is_a_bounce_with_its_action() {
    // §21.1: only Inbox DSNs become a deliveryReport; in Junk the same message passes the bounce
    // rules and carries the DSN's own action.
    let Feedback::Bounce(bounce) = detect(&load("rfc3464-delivered.eml"), JUNK) else {
        panic!("expected a bounce");
    };
    assert_eq!(bounce.action, "delivered");
    assert_eq!(bounce.recipient, "frank@dest.example");
    assert_eq!(
        bounce.message_id,
        "<rfc3464-delivered.1@sender.example.com>"
    );
}

#[test]
fn stored_record_and_listing_from_a_parsed_bounce() {
    let bounce = parse_bounce(&load("postfix-dsn.eml")).unwrap();
    let mut stored = BounceRecord::new(&bounce, "AAAAAgAAAAU", 1_704_193_337_000).encode();
    stored.extend(BounceRecord::new(&bounce, "AAAAAgAAAAk", 1_704_279_737_500).encode());
    assert_eq!(
        serde_json::to_value(bounce_listing(&stored).unwrap()).unwrap(),
        json!([
            {
                "message": "AAAAAgAAAAU",
                "recipient": "nobody@dest.example",
                "action": "failed",
                "response": {
                    "message": "550 5.1.1 <nobody@dest.example>: Recipient address rejected: User unknown in virtual mailbox table",
                    "status": "5.1.1"
                },
                "date": "2024-01-02T11:02:17.000Z"
            },
            {
                "message": "AAAAAgAAAAk",
                "recipient": "nobody@dest.example",
                "action": "failed",
                "response": {
                    "message": "550 5.1.1 <nobody@dest.example>: Recipient address rejected: User unknown in virtual mailbox table",
                    "status": "5.1.1"
                },
                "date": "2024-01-03T11:02:17.500Z"
            }
        ])
    );
}

#[test]
fn webhook_data_shapes() {
    let bounce = parse_bounce(&load("qmail.eml")).unwrap();
    let data = bounce.webhook_data("AAAAAQAAAAM");
    let keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "bounceMessage",
            "recipient",
            "action",
            "response",
            "mta",
            "messageId",
            "messageHeaders"
        ]
    );
    let complaint = parse_complaint(&load("arf-rfc5965.eml")).unwrap();
    let data = complaint.webhook_data("AAAAAQAAAAQ");
    let keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["complaintMessage", "arf", "headers"]);
}

#[test]
fn related_message_ids() {
    let related = |name: &str| {
        detect(&load(name), INBOX)
            .related_message_id()
            .map(str::to_string)
    };
    assert_eq!(
        related("exim.eml").as_deref(),
        Some("<exim.1@sender.example.com>")
    );
    assert_eq!(
        related("hotmail-complaint.eml").as_deref(),
        Some("<hotmail-complaint.1@sender.example.com>")
    );
    assert_eq!(related("rfc3464-delayed.eml"), None);
    assert_eq!(related("autoreply.eml"), None);
}

#[test]
fn every_sample_has_a_source_note() {
    let dir = format!("{}/tests/corpus", env!("CARGO_MANIFEST_DIR"));
    let sources = std::fs::read_to_string(format!("{dir}/SOURCES.md")).unwrap();
    let mut samples = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".eml") {
            samples += 1;
            assert!(
                sources.contains(&format!("`{name}`")),
                "{name} missing from SOURCES.md"
            );
        }
    }
    assert_eq!(samples, 19);
}

#[test]
fn amazon_ses() {
    check(
        "amazon-ses.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "noah@dest.example",
            "action": "failed",
            "response": {
                "source": "smtp",
                "message": "550 5.1.1 <noah@dest.example>: Recipient address rejected: User unknown",
                "status": "5.1.1"
            },
            "mta": "mx.dest.example",
            "messageId": "<0101018cfa5aa9d0-3f2e1d0c-b9a8-4765-8432-10fedcba9876-000000@us-west-2.amazonses.com>",
            "messageHeaders": {
                "return-path": [
                    "<0101018cfa5aa9d0-sender@us-west-2.amazonses.com>"
                ],
                "from": [
                    "Newsletter <news@sender.example.com>"
                ],
                "to": [
                    "noah@dest.example"
                ],
                "subject": [
                    "January newsletter"
                ],
                "message-id": [
                    "<0101018cfa5aa9d0-3f2e1d0c-b9a8-4765-8432-10fedcba9876-000000@us-west-2.amazonses.com>"
                ],
                "date": [
                    "Thu, 11 Jan 2024 19:03:10 +0000"
                ],
                "mime-version": [
                    "1.0"
                ],
                "content-type": [
                    "text/plain; charset=UTF-8"
                ]
            }
        }),
    );
}

#[test]
fn arf_rfc5965() {
    check(
        "arf-rfc5965.eml",
        INBOX,
        Kind::Complaint,
        json!({
            "arf": {
                "feedbackType": "abuse",
                "originalMailFrom": "somespammer@example.net",
                "originalRcptTo": [
                    "user@example.com"
                ],
                "sourceIp": "192.0.2.1",
                "arrivalDate": "Thu, 8 Mar 2005 14:00:00 EDT",
                "userAgent": "SomeGenerator/1.0",
                "version": "1",
                "reportingMta": "dns; mail.example.com"
            },
            "headers": {
                "messageId": "<8787KJKJ3K4J3K4J3K4J3.mail@example.net>",
                "from": "somespammer@example.net",
                "to": [
                    "Undisclosed Recipients"
                ],
                "subject": "Earn money",
                "date": "2004-09-02T17:31:03.000Z"
            }
        }),
    );
}

#[test]
fn autoreply() {
    check("autoreply.eml", INBOX, Kind::None, Value::Null);
}

#[test]
fn exchange_legacy() {
    check(
        "exchange-legacy.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "mia@contoso.example",
            "action": "failed",
            "response": {
                "message": "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found",
                "status": "5.1.1"
            },
            "mta": "ex2010.contoso.example",
            "messageId": "<exchange-legacy.1@sender.example.com>",
            "messageHeaders": {
                "received": [
                    "from mail.sender.example.com (198.51.100.7) by ex2010.contoso.example (10.0.0.5) with Microsoft SMTP Server id 14.3.498.0; Wed, 10 Jan 2024 07:55:30 +0000"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "<mia@contoso.example>"
                ],
                "subject": [
                    "Budget review"
                ],
                "date": [
                    "Wed, 10 Jan 2024 07:55:28 +0000"
                ],
                "message-id": [
                    "<exchange-legacy.1@sender.example.com>"
                ],
                "mime-version": [
                    "1.0"
                ],
                "content-type": [
                    "text/plain"
                ]
            }
        }),
    );
}

#[test]
fn exchange_o365() {
    check(
        "exchange-o365.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "leo@fabrikam.example",
            "action": "failed",
            "response": {
                "source": "smtp",
                "message": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                "status": "5.1.10"
            },
            "mta": "mx.fabrikam.example",
            "messageId": "<exchange-o365.1@AM0PR01MB5678.eurprd01.prod.exchangelabs.com>",
            "messageHeaders": {
                "received": [
                    "from AM0PR01MB5678.eurprd01.prod.exchangelabs.com (2603:10a6:208:100::15) by AM0PR01MB1234.eurprd01.prod.exchangelabs.com with HTTPS; Tue, 9 Jan 2024 15:20:42 +0000"
                ],
                "from": [
                    "Alice <alice@contoso.example>"
                ],
                "to": [
                    "Leo <leo@fabrikam.example>"
                ],
                "subject": [
                    "Project kickoff"
                ],
                "date": [
                    "Tue, 9 Jan 2024 15:20:40 +0000"
                ],
                "message-id": [
                    "<exchange-o365.1@AM0PR01MB5678.eurprd01.prod.exchangelabs.com>"
                ]
            }
        }),
    );
}

#[test]
fn exim() {
    check(
        "exim.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "henry@dest.example",
            "action": "failed",
            "response": {
                "message": "550 5.1.1 <henry@dest.example>: Recipient address rejected: User unknown",
                "status": "5.1.1"
            },
            "mta": "mx.dest.example",
            "messageId": "<exim.1@sender.example.com>",
            "messageHeaders": {
                "return-path": [
                    "<alice@sender.example.com>"
                ],
                "received": [
                    "from alice by smtp.sender.example.com with local (Exim 4.96) (envelope-from <alice@sender.example.com>) id 1rLh3K-000Fpz-2c for henry@dest.example; Fri, 05 Jan 2024 09:12:42 +0000"
                ],
                "to": [
                    "henry@dest.example"
                ],
                "subject": [
                    "Weekend plans"
                ],
                "message-id": [
                    "<exim.1@sender.example.com>"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "date": [
                    "Fri, 05 Jan 2024 09:12:42 +0000"
                ]
            }
        }),
    );
}

#[test]
fn generic_5xx() {
    check(
        "generic-5xx.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "quinn@dest.example",
            "action": "failed",
            "response": {
                "message": "550 5.7.1 <quinn@dest.example>: Message rejected by content policy",
                "status": "5.7.1"
            },
            "messageId": "<generic-5xx.1@sender.example.com>",
            "messageHeaders": {
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "quinn@dest.example"
                ],
                "subject": [
                    "Special offer"
                ],
                "message-id": [
                    "<generic-5xx.1@sender.example.com>"
                ],
                "date": [
                    "Sun, 14 Jan 2024 12:00:01 +0000"
                ]
            }
        }),
    );
}

#[test]
fn gmail_legacy() {
    check(
        "gmail-legacy.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "kate@old.example",
            "action": "failed",
            "response": {
                "message": "550 5.1.1 <kate@old.example>... User Unknown",
                "status": "5.1.1"
            },
            "mta": "mx.old.example",
            "messageId": "<gmail-legacy.1@mail.gmail.com>",
            "messageHeaders": {
                "mime-version": [
                    "1.0"
                ],
                "received": [
                    "by 10.0.0.2 with HTTP; Mon, 8 Jan 2024 05:09:58 -0800 (PST)"
                ],
                "date": [
                    "Mon, 8 Jan 2024 14:09:58 +0100"
                ],
                "message-id": [
                    "<gmail-legacy.1@mail.gmail.com>"
                ],
                "subject": [
                    "Old friends"
                ],
                "from": [
                    "Alice Sender <alice.sender@gmail.com>"
                ],
                "to": [
                    "kate@old.example"
                ],
                "content-type": [
                    "text/plain; charset=ISO-8859-1"
                ]
            }
        }),
    );
}

#[test]
fn gmail() {
    check(
        "gmail.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "jack@nowhere.example",
            "action": "failed",
            "response": {
                "source": "smtp",
                "message": "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550 5.1.1 unnecessary spaces.",
                "status": "5.1.1"
            },
            "mta": "mx.nowhere.example. (192.0.2.99, the server for the domain nowhere.example.)",
            "messageId": "<gmail.1@mail.gmail.com>",
            "messageHeaders": {
                "dkim-signature": [
                    "v=1; a=rsa-sha256; c=relaxed/relaxed; d=gmail.com; s=20230601; h=to:subject:message-id:date:from:mime-version:from:to:cc:subject:date:message-id:reply-to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AbCdEf"
                ],
                "mime-version": [
                    "1.0"
                ],
                "from": [
                    "Alice Sender <alice.sender@gmail.com>"
                ],
                "date": [
                    "Sun, 7 Jan 2024 12:44:18 +0100"
                ],
                "message-id": [
                    "<gmail.1@mail.gmail.com>"
                ],
                "subject": [
                    "Hello Jack"
                ],
                "to": [
                    "jack@nowhere.example"
                ],
                "content-type": [
                    "text/plain; charset=\"UTF-8\""
                ]
            }
        }),
    );
}

#[test]
fn hotmail_complaint() {
    check(
        "hotmail-complaint.eml",
        INBOX,
        Kind::Complaint,
        json!({
            "arf": {
                "source": "Hotmail",
                "feedbackType": "abuse",
                "abuseType": "complaint",
                "originalRcptTo": [
                    "sam@hotmail.com"
                ]
            },
            "headers": {
                "messageId": "<hotmail-complaint.1@sender.example.com>",
                "from": "news@sender.example.com",
                "to": [
                    "sam@hotmail.com"
                ],
                "subject": "Weekly deals",
                "date": "2024-01-16T12:09:58.000Z"
            }
        }),
    );
}

#[test]
fn postfix_dsn() {
    check(
        "postfix-dsn.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "nobody@dest.example",
            "action": "failed",
            "response": {
                "source": "smtp",
                "message": "550 5.1.1 <nobody@dest.example>: Recipient address rejected: User unknown in virtual mailbox table",
                "status": "5.1.1"
            },
            "mta": "mx.dest.example",
            "queueId": "4T4kZn6Bq8z9sWk",
            "messageId": "<postfix-dsn.1@sender.example.com>",
            "messageHeaders": {
                "return-path": [
                    "<alice@sender.example.com>"
                ],
                "received": [
                    "from [127.0.0.1] (localhost [127.0.0.1]) by mail.sender.example.com (Postfix) with ESMTPSA id 4T4kZn6Bq8z9sWk for <nobody@dest.example>; Tue,  2 Jan 2024 11:02:15 +0000 (UTC)"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "nobody@dest.example"
                ],
                "subject": [
                    "Meeting notes"
                ],
                "message-id": [
                    "<postfix-dsn.1@sender.example.com>"
                ],
                "date": [
                    "Tue, 02 Jan 2024 11:02:14 +0000"
                ],
                "mime-version": [
                    "1.0"
                ],
                "content-type": [
                    "text/plain; charset=utf-8"
                ]
            }
        }),
    );
}

#[test]
fn postfix_headers_only() {
    check(
        "postfix-headers-only.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "ghost@dest.example",
            "action": "failed",
            "response": {
                "source": "X-Postfix",
                "message": "unknown user: \"ghost\"",
                "status": "5.1.1"
            },
            "mta": "mx.dest.example",
            "queueId": "4T4mmQ2Lk4z3Wfr",
            "messageId": "<postfix-headers-only.1@sender.example.com>",
            "messageHeaders": {
                "return-path": [
                    "<alice@sender.example.com>"
                ],
                "received": [
                    "from mail.sender.example.com (mail.sender.example.com [198.51.100.7]) by mx.dest.example (Postfix) with ESMTPS id 4T4mmQ2Lk4z3Wfr for <ghost@dest.example>; Tue,  2 Jan 2024 12:40:08 +0000 (UTC)"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "ghost@dest.example"
                ],
                "subject": [
                    "=?UTF-8?Q?R=C3=A9union?="
                ],
                "message-id": [
                    "<postfix-headers-only.1@sender.example.com>"
                ],
                "date": [
                    "Tue, 02 Jan 2024 12:40:05 +0000"
                ]
            }
        }),
    );
}

#[test]
fn qmail() {
    check(
        "qmail.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "ivy@far.example",
            "action": "failed",
            "response": {
                "message": "550 5.1.1 <ivy@far.example>: Recipient address rejected: User unknown in local recipient table",
                "status": "5.1.1"
            },
            "mta": "192.0.2.80",
            "messageId": "<qmail.1@sender.example.com>",
            "messageHeaders": {
                "return-path": [
                    "<alice@sender.example.com>"
                ],
                "received": [
                    "(qmail 29825 invoked by uid 89); 6 Jan 2024 16:05:10 -0000",
                    "from mail.sender.example.com (198.51.100.7) by mail.dest.example with SMTP; 6 Jan 2024 16:05:10 -0000"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "ivy@far.example"
                ],
                "subject": [
                    "Re: the plan"
                ],
                "message-id": [
                    "<qmail.1@sender.example.com>"
                ],
                "date": [
                    "Sat, 06 Jan 2024 16:05:08 +0000"
                ]
            }
        }),
    );
}

#[test]
fn rfc3464_delayed() {
    check(
        "rfc3464-delayed.eml",
        INBOX,
        Kind::DeliveryReport,
        json!({
            "reportingMta": "dns; relay.dest.example",
            "arrivalDate": "Wed, 3 Jan 2024 04:00:00 +0000",
            "finalRecipient": "rfc822; erin@slow.example",
            "action": "delayed",
            "status": "4.4.7",
            "remoteMta": "dns; mx.slow.example",
            "diagnosticCode": "smtp; 451 4.4.7 Try again later",
            "willRetryUntil": "Fri, 5 Jan 2024 04:00:00 +0000"
        }),
    );
}

#[test]
fn rfc3464_delivered() {
    check(
        "rfc3464-delivered.eml",
        INBOX,
        Kind::DeliveryReport,
        json!({
            "reportingMta": "dns; mx.dest.example",
            "originalEnvelopeId": "a91c4e77-sender",
            "arrivalDate": "Wed, 3 Jan 2024 09:30:00 +0000",
            "finalRecipient": "rfc822; frank@dest.example",
            "originalRecipient": "rfc822;frank@dest.example",
            "action": "delivered (to mailbox)",
            "status": "2.0.0",
            "diagnosticCode": "smtp; 250 2.0.0 Ok: queued as 4T4nZb1Xyz"
        }),
    );
}

#[test]
fn rfc3464_failed() {
    check(
        "rfc3464-failed.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "bob@dest.example",
            "action": "failed",
            "response": {
                "source": "smtp",
                "message": "550 5.1.1 <bob@dest.example>... User unknown",
                "status": "5.1.1"
            },
            "mta": "mx2.dest.example",
            "messageId": "<rfc3464-failed.1@sender.example.com>",
            "messageHeaders": {
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "carol@dest.example, bob@dest.example, dave@dest.example"
                ],
                "subject": [
                    "Quarterly figures"
                ],
                "date": [
                    "Tue, 2 Jan 2024 10:14:50 +0000"
                ],
                "message-id": [
                    "<rfc3464-failed.1@sender.example.com>"
                ]
            }
        }),
    );
}

#[test]
fn sendmail_dsn() {
    check(
        "sendmail-dsn.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "grace@dest.example",
            "action": "failed",
            "response": {
                "source": "SMTP",
                "message": "552 5.2.2 Mailbox full",
                "status": "5.2.2"
            },
            "mta": "mailhost.dest.example",
            "messageId": "<sendmail-dsn.1@sender.example.com>",
            "messageHeaders": {
                "return-path": [
                    "<alice@sender.example.com>"
                ],
                "received": [
                    "from mail.sender.example.com (mail.sender.example.com [198.51.100.7]) by gw.dest.example (8.17.1/8.17.1) with ESMTPS id 404ELe0x018233 for <grace@dest.example>; Thu, 4 Jan 2024 14:21:38 +0000"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "Grace <grace@dest.example>"
                ],
                "subject": [
                    "Photos"
                ],
                "message-id": [
                    "<sendmail-dsn.1@sender.example.com>"
                ],
                "date": [
                    "Thu, 04 Jan 2024 14:21:36 +0000"
                ],
                "mime-version": [
                    "1.0"
                ],
                "content-type": [
                    "text/plain; charset=us-ascii"
                ]
            }
        }),
    );
}

#[test]
fn yahoo() {
    check(
        "yahoo.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "olivia@yahoo.example",
            "action": "failed",
            "response": {
                "message": "554: delivery error: dd Sorry, your message to olivia@yahoo.example cannot be delivered. This mailbox is disabled (554.30). - mta4042.mail.ne1.yahoo.com"
            },
            "messageId": "<yahoo.1@sender.example.com>",
            "messageHeaders": {
                "received": [
                    "from 198.51.100.7 (EHLO mail.sender.example.com) by mta4042.mail.ne1.yahoo.com with SMTP; Fri, 12 Jan 2024 22:41:05 +0000"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "olivia@yahoo.example"
                ],
                "subject": [
                    "Catching up"
                ],
                "message-id": [
                    "<yahoo.1@sender.example.com>"
                ],
                "date": [
                    "Fri, 12 Jan 2024 22:41:03 +0000"
                ]
            }
        }),
    );
}

#[test]
fn zoho() {
    check(
        "zoho.eml",
        INBOX,
        Kind::Bounce,
        json!({
            "recipient": "paul@dest.example",
            "action": "failed",
            "response": {
                "message": "550 5.1.1 <paul@dest.example>... User Unknown",
                "status": "5.1.1"
            },
            "messageId": "<zoho.1@sender.example.com>",
            "messageHeaders": {
                "received": [
                    "from mail.sender.example.com (198.51.100.7) by mx.zohomail.com with SMTP id 1705127401000123; Sat, 13 Jan 2024 06:30:01 +0000"
                ],
                "from": [
                    "Alice <alice@sender.example.com>"
                ],
                "to": [
                    "paul@dest.example"
                ],
                "subject": [
                    "Tickets"
                ],
                "message-id": [
                    "<zoho.1@sender.example.com>"
                ],
                "date": [
                    "Sat, 13 Jan 2024 06:29:59 +0000"
                ]
            }
        }),
    );
}
