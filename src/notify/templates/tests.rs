//! Tests of the built-in templates, rendering and validation.

use super::*;
use crate::notify::format::format_money;

fn override_with_text(text_body: &str) -> TemplateSource {
    let (mut source, _) = builtin(TemplateKind::FriendlyReminder, "en");
    source.text_body = text_body.to_string();
    source
}

#[test]
fn kinds_round_trip_through_their_names() {
    for kind in TemplateKind::ALL {
        assert_eq!(TemplateKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(
        TemplateKind::parse("collection_agency_handover"),
        Some(TemplateKind::CollectionAgencyHandover)
    );
    assert_eq!(TemplateKind::parse("FriendlyReminder"), None);
    assert_eq!(TemplateKind::parse(""), None);
}

#[test]
fn every_builtin_renders_in_every_locale() {
    for kind in TemplateKind::ALL {
        for locale in BUILTIN_LOCALES {
            let (source, used) = builtin(kind, locale);
            assert_eq!(used, locale);
            let context = sample_context(locale);
            let email =
                render(&source, &context).unwrap_or_else(|err| panic!("{kind} {locale}: {err}"));
            let total = format_money("1400.50", "EUR", locale);
            let usd_total = format_money("89.90", "USD", locale);
            assert!(!email.subject.is_empty(), "{kind} {locale}: empty subject");
            assert!(!email.subject.contains('\n'), "{kind} {locale}");
            for (part, body) in [("text", &email.text_body), ("html", &email.html_body)] {
                for number in ["INV-2026-0042", "INV-2026-0057", "INV-2026-0061"] {
                    assert!(body.contains(number), "{kind} {locale} {part}: {number}");
                }
                assert!(body.contains(&total), "{kind} {locale} {part}: {total}");
                assert!(
                    body.contains(&usd_total),
                    "{kind} {locale} {part}: {usd_total}"
                );
                assert!(
                    body.contains("Bluebird Bakery GmbH"),
                    "{kind} {locale} {part}: customer name"
                );
                assert!(
                    body.contains("Northwind Supplies Ltd"),
                    "{kind} {locale} {part}: organization name"
                );
                assert!(
                    body.contains("accounts@northwind.example"),
                    "{kind} {locale} {part}: reply-to hint"
                );
                assert!(
                    !body.contains("{{"),
                    "{kind} {locale} {part}: unrendered tag"
                );
                assert!(
                    !body.contains("{%"),
                    "{kind} {locale} {part}: unrendered tag"
                );
            }
            assert!(email.html_body.contains("<table"), "{kind} {locale}");
            assert!(
                email
                    .html_body
                    .contains(&format!("<html lang=\"{locale}\">")),
                "{kind} {locale}"
            );
        }
    }
}

#[test]
fn every_builtin_renders_with_optional_values_empty() {
    let mut context = minimal_sample_context();
    for kind in TemplateKind::ALL {
        for locale in BUILTIN_LOCALES {
            context.locale = locale.to_string();
            let (source, _) = builtin(kind, locale);
            let email =
                render(&source, &context).unwrap_or_else(|err| panic!("{kind} {locale}: {err}"));
            let total = format_money("12000", "JPY", locale);
            assert!(email.text_body.contains("inv_0042"), "{kind} {locale}");
            assert!(email.text_body.contains(&total), "{kind} {locale}: {total}");
            assert!(email.html_body.contains(&total), "{kind} {locale}: {total}");
            assert!(!email.subject.is_empty(), "{kind} {locale}");
        }
    }
}

#[test]
fn every_builtin_passes_validation() {
    for kind in TemplateKind::ALL {
        for locale in BUILTIN_LOCALES {
            let (source, _) = builtin(kind, locale);
            assert_eq!(validate(&source), Ok(()), "{kind} {locale}");
        }
    }
}

#[test]
fn ladder_content() {
    let context = sample_context("en");
    let render_kind = |kind| {
        let (source, _) = builtin(kind, "en");
        render(&source, &context).unwrap_or_else(|err| panic!("{kind}: {err}"))
    };
    let final_notice = render_kind(TemplateKind::FinalNotice);
    assert!(final_notice.subject.starts_with("Final notice"));
    assert!(final_notice.text_body.contains("collection agency"));
    assert!(final_notice.text_body.contains("suspending"));

    let request = render_kind(TemplateKind::PaymentRequest);
    assert_eq!(
        request.subject,
        "Payment request from Northwind Supplies Ltd"
    );
    assert!(
        request
            .text_body
            .contains("https://pay.northwind.example/r/pr_7Hq2")
    );
    // Autoescaping writes `/` as `&#x2f;`, which browsers decode in attributes.
    assert!(
        request
            .html_body
            .contains("<a href=\"https:&#x2f;&#x2f;pay.northwind.example")
    );

    let handover = render_kind(TemplateKind::CollectionAgencyHandover);
    assert!(handover.text_body.contains("CUST-1042"));
    assert!(
        handover
            .text_body
            .contains("17 October 2026: Firm reminder sent")
    );
    assert!(
        handover
            .html_body
            .contains("Final notice sent; suspension requested")
    );

    let sales = render_kind(TemplateKind::SalesNotification);
    assert_eq!(
        sales.subject,
        "Overdue account: Bluebird Bakery GmbH (CUST-1042)"
    );
    assert!(sales.text_body.contains("31 days overdue"));
}

#[test]
fn subjects_name_a_single_invoice() {
    let mut context = sample_context("de");
    context.invoices.truncate(1);
    context.totals.truncate(1);
    context.totals[0].amount = "1250.00".to_string();
    let (source, _) = builtin(TemplateKind::FriendlyReminder, "de");
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        email.subject,
        "Zahlungserinnerung zu Rechnung INV-2026-0042"
    );
    let (source, _) = builtin(TemplateKind::PaymentRequest, "de");
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        email.subject,
        "Zahlungsaufforderung von Northwind Supplies Ltd: 1.250,00\u{a0}€ offen"
    );
}

#[test]
fn locale_fallback() {
    assert_eq!(resolve_locale("de-AT"), "de");
    assert_eq!(resolve_locale("de"), "de");
    assert_eq!(resolve_locale("fr_CA"), "fr");
    assert_eq!(resolve_locale("FR"), "fr");
    assert_eq!(resolve_locale("en-US"), "en");
    assert_eq!(resolve_locale("pt"), "en");
    assert_eq!(resolve_locale(""), "en");

    let (austrian, used) = builtin(TemplateKind::FirmReminder, "de-AT");
    assert_eq!(used, "de");
    assert_eq!(austrian, builtin(TemplateKind::FirmReminder, "de").0);
    let (portuguese, used) = builtin(TemplateKind::FirmReminder, "pt-BR");
    assert_eq!(used, "en");
    assert_eq!(portuguese, builtin(TemplateKind::FirmReminder, "en").0);
}

#[test]
fn german_formatting_in_templates() {
    let mut context = sample_context("de");
    context.locale = "de-AT".to_string();
    let (source, _) = builtin(TemplateKind::FirmReminder, "de-AT");
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert!(email.text_body.contains("fällig am 30. September 2026"));
    assert!(email.text_body.contains("1.250,00\u{a0}€"));
    assert!(
        email
            .text_body
            .contains("Offener Gesamtbetrag (EUR): 1.400,50\u{a0}€")
    );
    assert!(email.text_body.contains("89,90\u{a0}$"));
    assert!(email.html_body.contains("15. Oktober 2026"));
}

#[test]
fn filters_follow_the_context_locale() {
    let source = TemplateSource {
        subject: "{{ '1250.5'|money('EUR') }} {{ '2026-10-31'|date }}".to_string(),
        text_body: "{{ 12|money('USD') }}".to_string(),
        html_body: "{{ locale }}".to_string(),
    };
    let mut context = sample_context("fr");
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(email.subject, "1\u{202f}250,5\u{a0}€ 31 octobre 2026");
    assert_eq!(email.text_body, "12\u{a0}$");
    assert_eq!(email.html_body, "fr");
    context.locale = "en".to_string();
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(email.subject, "€1,250.5 31 October 2026");
}

#[test]
fn unclosed_block_is_reported_with_part_and_line() {
    let source = override_with_text(
        "Dear {{ customer.name }},\n\n{% if payment_link %}\nPay here: {{ payment_link }}\n",
    );
    let err = validate(&source).err();
    let err = err.unwrap_or_else(|| panic!("the broken template was accepted"));
    assert_eq!(err.part, "text_body");
    assert!(err.message.contains("syntax error"), "{err}");

    // An unclosed block is reported where the input ends: here on line 3.
    let source = override_with_text(
        "Hello {{ customer.name }},\n\n{% if payment_link %}Pay: {{ payment_link }}",
    );
    let err = validate(&source).err();
    let err = err.unwrap_or_else(|| panic!("the broken template was accepted"));
    assert_eq!((err.part, err.line), ("text_body", 3));
    assert!(err.message.contains("expected end of block"), "{err}");

    let source = override_with_text("Hello\n\n{% if %}\nnever closed");
    let err = validate(&source).err();
    let err = err.unwrap_or_else(|| panic!("the broken template was accepted"));
    assert_eq!(err.part, "text_body");
    assert_eq!(err.line, 3);
    assert!(err.message.starts_with("syntax error"), "{err}");
    assert!(
        err.to_string()
            .starts_with("text_body line 3: syntax error"),
        "{err}"
    );
}

#[test]
fn errors_in_subject_and_html_name_their_part() {
    let (mut source, _) = builtin(TemplateKind::FinalNotice, "fr");
    source.subject = "Rappel {{ customer.name ".to_string();
    let err = validate(&source)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!((err.part, err.line), ("subject", 1));

    let (mut source, _) = builtin(TemplateKind::FinalNotice, "fr");
    source.html_body = "<p>\n{{ customer.name|no_such_filter }}\n</p>".to_string();
    let err = validate(&source)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!((err.part, err.line), ("html_body", 2));
    assert!(err.message.contains("unknown filter"), "{err}");
}

#[test]
fn undefined_variables_are_rejected_when_printed() {
    // A misspelt variable is caught at save time ...
    let err = validate(&override_with_text("Dear {{ custmer.name }},"))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!((err.part, err.line), ("text_body", 1));
    let err = validate(&override_with_text("Hi\n{{ customer.nmae }}"))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!((err.part, err.line), ("text_body", 2));
    assert!(err.message.contains("undefined"), "{err}");
    let err = validate(&override_with_text("{{ customer.nmae|date }}"))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.part, "text_body");
    let err = validate(&override_with_text("{{ invoices[0].amount|money('EUR') }}"))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert!(err.message.contains("undefined"), "{err}");
    // ... but testing an undefined value, or giving it a default, is fine.
    let lenient = override_with_text(
        "{% if customer.phone %}Call {{ customer.phone }}{% endif %}{{ customer.fax|default('-') }}",
    );
    assert_eq!(validate(&lenient), Ok(()));
    let email = render(&lenient, &sample_context("en")).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(email.text_body, "-");
}

#[test]
fn empty_subject_and_oversized_parts_are_rejected() {
    let (mut source, _) = builtin(TemplateKind::FriendlyReminder, "en");
    source.subject = "{% if false %}x{% endif %}\n".to_string();
    let err = validate(&source)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.part, "subject");

    let (mut source, _) = builtin(TemplateKind::FriendlyReminder, "en");
    source.html_body = "x".repeat(MAX_TEMPLATE_PART_BYTES + 1);
    let err = validate(&source)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.part, "html_body");
}

#[test]
fn runaway_templates_fail_instead_of_hanging() {
    let source = override_with_text(
        "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
    );
    let err = render(&source, &sample_context("en")).err();
    let err = err.unwrap_or_else(|| panic!("the runaway template rendered"));
    assert_eq!(err.part, "text_body");
    assert!(err.message.contains("fuel"), "{err}");
}

#[test]
fn many_invoices_fit_the_render_budget() {
    let mut context = sample_context("de");
    let invoice = context.invoices[0].clone();
    context.invoices = (0..500)
        .map(|index| InvoiceVars {
            number: format!("INV-{index:05}"),
            ..invoice.clone()
        })
        .collect();
    for kind in TemplateKind::ALL {
        let (source, _) = builtin(kind, "de");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{kind}: {err}"));
        assert!(email.html_body.contains("INV-00499"), "{kind}");
    }
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let mut context = sample_context("en");
    context.customer.name = "<script>alert('x')</script> & Co".to_string();
    context.invoices[0].number = "<b>INV</b>".to_string();
    for kind in TemplateKind::ALL {
        let (source, _) = builtin(kind, "en");
        let email = render(&source, &context).unwrap_or_else(|err| panic!("{kind}: {err}"));
        assert!(!email.html_body.contains("<script>"), "{kind}");
        assert!(!email.html_body.contains("<b>INV"), "{kind}");
        assert!(email.html_body.contains("&lt;script&gt;"), "{kind}");
        assert!(email.html_body.contains("&amp; Co"), "{kind}");
        assert!(email.text_body.contains("<b>INV</b>"), "{kind}");
    }
    let (source, _) = builtin(TemplateKind::SalesNotification, "en");
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert!(email.subject.contains("<script>alert('x')</script> & Co"));
    assert!(email.text_body.contains("<script>alert('x')</script> & Co"));
}

#[test]
fn subject_is_collapsed_to_one_line() {
    let source = TemplateSource {
        subject: "  Reminder\n{{ customer.name }}\r\n\tfor {{ '5'|money('EUR') }}  \n".to_string(),
        text_body: String::new(),
        html_body: String::new(),
    };
    let mut context = sample_context("de");
    context.customer.name = "Evil\r\nBcc: someone@example.com".to_string();
    let email = render(&source, &context).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        email.subject,
        "Reminder Evil Bcc: someone@example.com for 5\u{a0}€"
    );
}

#[test]
fn includes_find_nothing() {
    let err = validate(&override_with_text("{% include 'secret' %}"))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.part, "text_body");
}

#[test]
fn an_instalment_reminder_names_the_instalment_and_shows_the_plan() {
    for (locale, words) in [
        (
            "en",
            ["instalment 2 of 2", "15 December 2026", "paid, thank you"],
        ),
        (
            "de",
            ["Rate 2 von 2", "15. Dezember 2026", "bezahlt, vielen Dank"],
        ),
        (
            "fr",
            ["échéance 2 sur 2", "15 décembre 2026", "payée, merci"],
        ),
    ] {
        let (source, _) = builtin(TemplateKind::InstalmentReminder, locale);
        let email = render(&source, &sample_context(locale)).unwrap();
        let amount = format_money("700.50", "EUR", locale);
        assert!(
            email.subject.contains(&amount),
            "{locale}: {}",
            email.subject
        );
        for body in [&email.text_body, &email.html_body] {
            for word in words {
                assert!(body.contains(word), "{locale}: {word} in {body}");
            }
            assert!(body.contains(&format_money("700.00", "EUR", locale)));
        }
    }
    // Outside a plan (a preview without one) it still renders, without an instalment.
    let (source, _) = builtin(TemplateKind::InstalmentReminder, "en");
    let email = render(&source, &minimal_sample_context()).unwrap();
    assert_eq!(
        email.subject,
        "Your payment plan with Northwind Supplies Ltd"
    );
    assert!(!email.text_body.contains("Your payment plan:"));
}
