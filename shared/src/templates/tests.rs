//! Rendering tests: every template compiles and renders in both locales, and what each health
//! and onboarding-program message says for realistic vars (`health/actions.rs` and
//! `milestones/program.rs` plan them, `delivery/message.rs` adds the account's and the
//! deployment's at send time).

use super::*;
use serde_json::json;

fn vars() -> serde_json::Value {
    json!({
        "contact_name": "<b>Eve</b> & Co",
        "account_name": "Acme",
        "csm_name": "Sato",
        "unsubscribe_url": "https://api.example.com/unsubscribe?token=abc.def",
        "title": "Quarterly report",
        "time_left": "3 days",
        "due_local": "2026-11-23 18:00",
        "link": "https://app.example.com/d/1",
        "score": 42,
        "reasons": ["logins down 40%", "NPS 3"],
    })
}

#[test]
fn every_template_compiles() {
    let mut env = Environment::new();
    for (name, src) in SOURCES {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
}

#[test]
fn every_kind_renders_in_both_locales() {
    for &kind in NudgeKind::ALL {
        for locale in [Locale::Ja, Locale::En] {
            let r = render(kind, Some(Stage::TMinus3d), "a", locale, &vars())
                .unwrap_or_else(|e| panic!("{kind} {locale}: {e}"));
            assert!(!r.subject.is_empty(), "{kind} {locale}");
            assert!(!r.text.trim().is_empty(), "{kind} {locale}");
            if kind.audience() == Audience::Customer {
                assert!(
                    r.text
                        .contains("https://api.example.com/unsubscribe?token=abc.def"),
                    "{kind} {locale} text footer"
                );
                assert!(
                    !r.text.contains("&#x2f;"),
                    "{kind} {locale} text is not HTML"
                );
                // Auto-escape writes `/` as `&#x2f;` in HTML: compare the decoded href.
                assert!(
                    r.html
                        .replace("&#x2f;", "/")
                        .contains("href=\"https://api.example.com/unsubscribe?token=abc.def\""),
                    "{kind} {locale} html footer: {}",
                    r.html
                );
            } else {
                assert!(r.html.is_empty());
            }
        }
    }
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let r = render(
        NudgeKind::DeadlineReminder,
        Some(Stage::Final),
        "a",
        Locale::En,
        &vars(),
    )
    .unwrap();
    // `/` is escaped too (`&#x2f;`): compare with it read back as `/`.
    assert!(
        r.html
            .replace("&#x2f;", "/")
            .contains("&lt;b&gt;Eve&lt;/b&gt; &amp; Co"),
        "{}",
        r.html
    );
    assert!(!r.html.contains("<b>Eve</b>"));
    assert!(r.text.contains("<b>Eve</b> & Co"));
    assert!(r.subject.starts_with("Last call: \"Quarterly report\""));
}

#[test]
fn stages_choose_the_wording() {
    let ja = render(
        NudgeKind::DeadlineReminder,
        Some(Stage::MorningOf),
        "a",
        Locale::Ja,
        &vars(),
    )
    .unwrap();
    assert!(ja.subject.starts_with("【本日締切】"), "{}", ja.subject);
    let en = render(
        NudgeKind::DeadlineReminder,
        Some(Stage::TMinus3d),
        "a",
        Locale::En,
        &vars(),
    )
    .unwrap();
    assert_eq!(en.subject, "\"Quarterly report\" is due in 3 days");
}

#[test]
fn variant_b_marks_a_resend() {
    let r = render(NudgeKind::UpsellOffer, None, "b", Locale::En, &vars()).unwrap();
    assert!(r.subject.starts_with("In case you missed it"));
}

#[test]
fn subject_cannot_carry_newlines() {
    let mut v = vars();
    v["title"] = json!("a\r\nBcc: x@example.com");
    let r = render(
        NudgeKind::DeadlineReminder,
        Some(Stage::Final),
        "a",
        Locale::En,
        &v,
    )
    .unwrap();
    assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
}

#[test]
fn emails_are_signed_with_the_deploying_company_never_with_nudge() {
    let mut v = vars();
    // A risk email is signed by the CSM only when it is theirs (`from_csm`).
    v["from_csm"] = json!(true);
    let r = render(NudgeKind::RiskNudge, None, "a", Locale::En, &v).unwrap();
    assert!(
        r.text.contains("Sato, your customer success manager\n"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("Nudge") && !r.html.contains("Nudge"));
    v["company_name"] = json!("Acme Analytics");
    v["product_name"] = json!("Acme Insights");
    let r = render(NudgeKind::RiskNudge, None, "a", Locale::En, &v).unwrap();
    assert!(
        r.text
            .contains("Sato, your customer success manager at Acme Analytics")
    );
    assert!(
        r.text.contains("you use Acme Insights at Acme"),
        "{}",
        r.text
    );
    assert!(r.html.contains("manager at Acme Analytics"));
    let ja = render(NudgeKind::RiskNudge, None, "a", Locale::Ja, &v).unwrap();
    assert!(
        ja.text
            .contains("Acme Analytics カスタマーサクセス担当 Sato"),
        "{}",
        ja.text
    );
}

// --- The health messages (`health_alert`, `risk_nudge`, `upsell_offer`, `admin_welcome`) ---

const APP: &str = "https://app.example.com";

const UNSUBSCRIBE: &str = "https://api.example.com/unsubscribe?token=abc.def";

/// A nudge's own vars plus what `delivery::message::template_vars` adds at send time (the
/// nudge's own win, as there).
fn sent(nudge: serde_json::Value) -> serde_json::Value {
    let mut v = json!({
        "account_name": "Globex",
        "plan": "standard",
        "renewal_date": "2027-03-31",
        "tier": "tech_touch",
        "csm_name": "Sato Hanako",
        "csm_email": "sato@vendor.example",
        "contact_name": "Ann",
        "unsubscribe_url": UNSUBSCRIBE,
        "app_url": APP,
    });
    if let serde_json::Value::Object(m) = nudge {
        for (k, val) in m {
            v[k] = val;
        }
    }
    v
}

/// Leftovers of a missing var or of template syntax, in any part of a message.
fn assert_clean(what: &str, r: &Rendered) {
    let parts = [
        ("subject", &r.subject),
        ("text", &r.text),
        ("html", &r.html),
    ];
    for (part, s) in parts {
        for bad in [
            "None",
            "null",
            "undefined",
            "()",
            "[]",
            "{}",
            "{account}",
            "{date}",
            "{{",
            "{%",
            "href=\"\"",
            ": \n",
        ] {
            assert!(!s.contains(bad), "{what} {part} contains {bad:?}:\n{s}");
        }
        // Styles say `border:none`; only the words must not.
        if part != "html" {
            assert!(!s.contains("none"), "{what} {part} contains \"none\":\n{s}");
            assert!(!s.contains("  "), "{what} {part} has a double space:\n{s}");
            assert!(
                !s.trim_end().ends_with(':'),
                "{what} {part} ends on a colon"
            );
        }
    }
    assert!(!r.subject.is_empty() && !r.text.trim().is_empty(), "{what}");
}

/// Help, never scold: a customer never reads that they did not use something.
fn assert_kind(what: &str, r: &Rendered) {
    for s in [&r.subject, &r.text, &r.html] {
        for bad in [
            "haven't",
            "have not",
            "didn't",
            "did not",
            "stopped",
            "lazy",
            "使っていない",
            "使われていない",
            "ご利用がない",
        ] {
            assert!(!s.contains(bad), "{what} contains {bad:?}:\n{s}");
        }
    }
}

fn render_clean(
    kind: NudgeKind,
    stage: Option<Stage>,
    locale: Locale,
    vars: &serde_json::Value,
) -> Rendered {
    let what = format!("{kind} {locale} {stage:?}");
    let r = render(kind, stage, "a", locale, vars).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_clean(&what, &r);
    if kind.audience() == Audience::Customer {
        assert_kind(&what, &r);
    }
    r
}

/// The HTML with `/` read back (the escaper writes it as `&#x2f;`).
fn html(r: &Rendered) -> String {
    r.html.replace("&#x2f;", "/")
}

#[test]
fn the_red_risk_email_is_the_csms_and_the_yellow_one_is_not() {
    let red = sent(json!({"band": "red", "feature": "report_builder", "from_csm": true}));
    let yellow = sent(json!({"band": "yellow", "feature": "report_builder", "from_csm": false}));
    for (locale, reply) in [
        (Locale::En, "reply to this email"),
        (Locale::Ja, "ご返信ください"),
    ] {
        let r = render_clean(NudgeKind::RiskNudge, Some(Stage::TurnsRed), locale, &red);
        assert!(r.text.contains(reply), "{locale}: {}", r.text);
        assert!(html(&r).contains(reply), "{locale}");
        // Signed in the body and in the footer.
        let (body, footer) = r.text.split_once("\n--\n").expect("a footer");
        assert!(
            body.trim_end().ends_with("\nSato Hanako"),
            "{locale}: {body}"
        );
        assert!(footer.contains("Sato Hanako"), "{locale}: {footer}");
        let (body, footer) = r.html.split_once("<hr").expect("a footer");
        assert!(
            body.contains("Sato Hanako") && footer.contains("Sato Hanako"),
            "{locale}"
        );

        let y = render_clean(
            NudgeKind::RiskNudge,
            Some(Stage::TurnsYellow),
            locale,
            &yellow,
        );
        for part in [&y.subject, &y.text, &y.html] {
            assert!(!part.contains("Sato"), "{locale}: {part}");
            assert!(!part.contains(reply), "{locale}: {part}");
        }
    }
}

#[test]
fn a_risk_email_offers_one_3_minute_step_for_the_feature_and_a_generic_one_otherwise() {
    let features = [
        ("report_builder", "report builder", "レポートビルダー"),
        ("dashboard", "dashboard", "ダッシュボード"),
        ("integration", "integrations page", "連携ページ"),
        ("workflow", "workflow", "ワークフロー"),
    ];
    for (locale, minutes) in [(Locale::En, "about 3 minutes"), (Locale::Ja, "3分ほど")] {
        let mut subjects = Vec::new();
        for (feature, en, ja) in features {
            let v = sent(json!({"band": "yellow", "feature": feature, "from_csm": false}));
            let r = render_clean(NudgeKind::RiskNudge, Some(Stage::TurnsYellow), locale, &v);
            let word = if locale == Locale::En { en } else { ja };
            assert!(r.text.contains(word), "{feature} {locale}: {}", r.text);
            assert!(r.text.contains(minutes), "{feature} {locale}");
            assert!(html(&r).contains(word), "{feature} {locale}");
            subjects.push(r.subject);
        }
        subjects.dedup();
        assert_eq!(subjects.len(), features.len(), "{locale}: {subjects:?}");
        // No feature, or one without a tip of its own: a step that names no feature.
        for feature in [json!(null), json!("sso")] {
            let v = sent(json!({"band": "yellow", "feature": feature, "from_csm": false}));
            let r = render_clean(NudgeKind::RiskNudge, Some(Stage::TurnsYellow), locale, &v);
            assert!(r.text.contains(minutes), "{locale}: {}", r.text);
            for (_, en, ja) in features {
                for word in [en, ja, "integration", "連携", "sso"] {
                    assert!(
                        !r.text.contains(word),
                        "{feature} {locale}: {word}\n{}",
                        r.text
                    );
                }
            }
        }
    }
}

/// Each of `parts` occurs in `text`, in this order.
fn assert_in_order(text: &str, parts: &[&str]) {
    let mut from = 0;
    for p in parts {
        let at = text[from..]
            .find(p)
            .unwrap_or_else(|| panic!("{p:?} missing after byte {from}:\n{text}"));
        from += at + p.len();
    }
}

#[test]
fn an_upsell_gives_an_admin_steps_and_an_executive_outcomes() {
    let offer = |role: &str, premium: bool| {
        sent(json!({"role": role, "premium": premium, "renewal_date": "2027-03-31"}))
    };
    let admin = render_clean(
        NudgeKind::UpsellOffer,
        Some(Stage::RenewalUpsell),
        Locale::En,
        &offer("admin", false),
    );
    assert_eq!(admin.subject, "Try the next plan before your renewal");
    assert_in_order(
        &admin.text,
        &[
            "\n1. Start the trial",
            "\n2. Invite",
            "31 Mar 2027",
            "No rush",
        ],
    );
    assert!(admin.html.contains("<ol>") && !admin.text.contains("coaching"));
    let exec = render_clean(
        NudgeKind::UpsellOffer,
        Some(Stage::RenewalUpsell),
        Locale::En,
        &offer("executive", false),
    );
    assert_in_order(
        &exec.text,
        &[
            "Your team at Globex",
            "\n- More of your people",
            "decisions",
            "\n- Less time",
            "31 Mar 2027",
            "No rush",
        ],
    );
    assert!(exec.html.contains("<ul>"));
    assert!(!exec.text.contains("Start the trial") && !exec.text.contains("1. "));

    let ja_admin = render_clean(
        NudgeKind::UpsellOffer,
        Some(Stage::RenewalUpsell),
        Locale::Ja,
        &offer("admin", false),
    );
    assert_in_order(
        &ja_admin.text,
        &[
            "\n1. プラン設定からトライアルを開始します",
            "\n2. ",
            "2027年3月31日",
            "ご都合のよいときに",
        ],
    );
    let ja_exec = render_clean(
        NudgeKind::UpsellOffer,
        Some(Stage::RenewalUpsell),
        Locale::Ja,
        &offer("executive", false),
    );
    assert_in_order(
        &ja_exec.text,
        &[
            "Globexの皆さま",
            "\n・より多くのメンバー",
            "意思決定",
            "2027年3月31日",
        ],
    );
    assert!(!ja_exec.text.contains("1. "));
}

#[test]
fn a_premium_account_is_offered_coaching_instead_of_a_plan() {
    for role in ["admin", "executive"] {
        let v = sent(json!({"role": role, "premium": true, "renewal_date": "2027-03-31"}));
        let en = render_clean(
            NudgeKind::UpsellOffer,
            Some(Stage::RenewalUpsell),
            Locale::En,
            &v,
        );
        assert_eq!(
            en.subject, "Coaching for your team before your renewal",
            "{role}"
        );
        assert!(en.text.contains("coaching session") && en.text.contains("31 Mar 2027"));
        assert!(
            !en.text.contains("plan") && !en.text.contains("trial"),
            "{role}: {}",
            en.text
        );
        let ja = render_clean(
            NudgeKind::UpsellOffer,
            Some(Stage::RenewalUpsell),
            Locale::Ja,
            &v,
        );
        assert!(
            ja.subject.contains("コーチング") && ja.text.contains("コーチング"),
            "{role}"
        );
        assert!(
            !ja.text.contains("プラン") && !ja.text.contains("トライアル"),
            "{role}"
        );
    }
    let admin = sent(json!({"role": "admin", "premium": true}));
    let r = render_clean(NudgeKind::UpsellOffer, None, Locale::En, &admin);
    assert!(r.text.contains("1. Pick a time"), "{}", r.text);
    let exec = sent(json!({"role": "executive", "premium": true}));
    let r = render_clean(NudgeKind::UpsellOffer, None, Locale::En, &exec);
    assert!(
        r.text
            .contains("- New colleagues become productive sooner."),
        "{}",
        r.text
    );
}

#[test]
fn an_admin_welcome_names_one_first_step_and_the_work_it_eases() {
    let steps = [
        ("invite_users", "invite your team", "「メンバーの招待」"),
        (
            "import_data",
            "import the data you already have",
            "「今お持ちのデータの取り込み」",
        ),
        (
            "first_report",
            "create your first report",
            "「最初のレポートの作成」",
        ),
    ];
    for (step, en, ja) in steps {
        let v = sent(json!({"first_step": step}));
        let r = render_clean(
            NudgeKind::AdminWelcome,
            Some(Stage::AdminChanged),
            Locale::En,
            &v,
        );
        assert_eq!(r.subject, "Welcome, Ann: one step to start with");
        assert!(
            r.text
                .contains(&format!("One step is enough to start: {en}.")),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(" then "),
            "says what gets easier: {}",
            r.text
        );
        let r = render_clean(
            NudgeKind::AdminWelcome,
            Some(Stage::AdminChanged),
            Locale::Ja,
            &v,
        );
        assert!(
            r.text.contains(&format!("まずはひとつだけ、{ja}から")),
            "{}",
            r.text
        );
    }
    for step in [json!(null), json!("connect_sso")] {
        let v = sent(json!({"first_step": step}));
        let r = render_clean(
            NudgeKind::AdminWelcome,
            Some(Stage::AdminChanged),
            Locale::En,
            &v,
        );
        assert!(
            r.text.contains("start: complete the first setup step."),
            "{}",
            r.text
        );
        assert!(!r.text.contains("sso"));
        let r = render_clean(
            NudgeKind::AdminWelcome,
            Some(Stage::AdminChanged),
            Locale::Ja,
            &v,
        );
        assert!(r.text.contains("「最初の設定ステップ」"), "{}", r.text);
    }
}

/// What `health::actions::alert_vars` plans for an account that turned red.
fn red_alert() -> serde_json::Value {
    json!({
        "trigger": "turns_red",
        "score": 38,
        "band": "red",
        "previous_band": "yellow",
        "previous_score": 55,
        "tier": "tech_touch",
        "arr": 48000.0,
        "drivers": [
            {"factor": "login_decline", "points": -10.0},
            {"factor": "active_contacts", "points": -7.5},
            {"factor": "nps", "points": -6.25},
        ],
        "moved": [
            {"factor": "login_decline", "points": -10.0},
            {"factor": "login_days", "points": -4.2},
        ],
        "nps": 3,
        "nps_comment": "Reports got slow after the update",
        "next_step": "login_decline",
    })
}

#[test]
fn the_csm_alert_says_what_happened_first_then_the_numbers_then_one_step() {
    let r = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsRed),
        Locale::En,
        &sent(red_alert()),
    );
    assert_eq!(r.subject, "Globex turned red: health 38 (was 55)");
    assert!(r.text.starts_with("Globex turned red.\n"), "{}", r.text);
    assert_in_order(
        &r.text,
        &[
            "Score: 55 → 38\n",
            "Band: yellow → red\n",
            "- Logins dropped sharply (-10)\n",
            "- Few active users (-8)\n",
            "- Low NPS (-6)\n",
            "Tier: tech touch\n",
            "ARR: 48,000\n",
            "Renewal: 31 Mar 2027\n",
            "Latest NPS: 3 \"Reports got slow after the update\"\n",
            "\nSuggested next step: Call the admin and ask what changed in their team's week; \
             offer a 15-minute walkthrough of the report they used most.",
        ],
    );
    assert!(r.html.is_empty(), "CSM alerts are text only");

    let ja = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsRed),
        Locale::Ja,
        &sent(red_alert()),
    );
    // SNS keeps only the ASCII of a subject: the band and the account still say what happened.
    assert!(
        ja.subject.starts_with("[red] Globexがレッドになりました"),
        "{}",
        ja.subject
    );
    assert!(
        ja.text.starts_with("Globexがレッドになりました。\n"),
        "{}",
        ja.text
    );
    assert_in_order(
        &ja.text,
        &[
            "スコア: 55 → 38\n",
            "バンド: イエロー → レッド\n",
            "- ログインが急減（-10）\n",
            "- アクティブユーザーが少ない（-8）\n",
            "ティア: テックタッチ\n",
            "ARR: 48,000\n",
            "更新日: 2027年3月31日\n",
            "最新のNPS: 3「Reports got slow after the update」\n",
            "\nおすすめの次の一手: 管理者に電話し、チームの1週間で何が変わったかを伺ってください。",
        ],
    );
}

#[test]
fn a_first_score_alert_shows_only_what_is_known() {
    let mut v = red_alert();
    v["trigger"] = json!("turns_yellow");
    v["band"] = json!("yellow");
    v["score"] = json!(52);
    v["previous_band"] = json!(null);
    v["previous_score"] = json!(null);
    v["moved"] = json!([]);
    v["drivers"] = json!([{"factor": "nps_detractor", "points": -10.0}]);
    v["nps"] = json!(2);
    v["nps_comment"] = json!(null);
    v["next_step"] = json!("nps_detractor");
    let r = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsYellow),
        Locale::En,
        &sent(v.clone()),
    );
    assert_eq!(r.subject, "Globex turned yellow: health 52");
    assert!(r.text.contains("Score: 52\n"), "{}", r.text);
    assert!(r.text.contains("Band: yellow (first score)\n"));
    assert!(r.text.contains("- Detractor NPS answer (-10)\n"));
    assert!(r.text.contains("Latest NPS: 2\n"), "no comment, no quotes");
    assert!(
        r.text.ends_with(
            "Suggested next step: Read the comment and reply personally within 2 days.\n"
        )
    );
    assert!(
        !r.text.contains("was") && !r.text.contains('"'),
        "{}",
        r.text
    );
    let ja = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsYellow),
        Locale::Ja,
        &sent(v.clone()),
    );
    assert!(
        ja.text.contains("バンド: イエロー（初回のスコア）\n"),
        "{}",
        ja.text
    );
    assert!(
        ja.text
            .contains("コメントを読み、2日以内に個別に返信してください。")
    );
    assert!(!ja.text.contains("前回") && !ja.text.contains('「'));

    // No NPS answer at all: no NPS line.
    v["nps"] = json!(null);
    for locale in [Locale::En, Locale::Ja] {
        let r = render_clean(
            NudgeKind::HealthAlert,
            Some(Stage::TurnsYellow),
            locale,
            &sent(v.clone()),
        );
        assert!(!r.text.contains("NPS:"), "{}", r.text);
    }
}

#[test]
fn a_new_admin_alert_asks_for_an_introduction() {
    let v = sent(json!({
        "trigger": "admin_changed", "tier": "high_touch", "arr": 120000.0,
        "next_step": "admin_changed",
    }));
    let r = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::AdminChanged),
        Locale::En,
        &v,
    );
    assert_eq!(r.subject, "Globex has a new admin");
    assert_in_order(
        &r.text,
        &[
            "Globex has a new admin.\n",
            "Tier: high touch\n",
            "ARR: 120,000\n",
            "Renewal: 31 Mar 2027\n",
            "Suggested next step: Introduce yourself to the new admin this week and offer a \
             30-minute handover.",
        ],
    );
    assert!(!r.text.contains("Score"));
    let ja = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::AdminChanged),
        Locale::Ja,
        &v,
    );
    assert_eq!(ja.subject, "Globexの管理者が交代しました");
    assert!(ja.text.contains("ティア: ハイタッチ\n"), "{}", ja.text);
    assert!(
        ja.text
            .contains("今週中に新しい管理者にご挨拶し、30分の引き継ぎをご提案ください。")
    );
}

#[test]
fn every_factor_has_a_label_and_a_next_step_in_both_locales() {
    // The factors of `health::model::Factor` (their wire names).
    let factors = [
        "tenure",
        "renewals",
        "days_to_renewal",
        "plan",
        "login_days",
        "login_trend",
        "active_contacts",
        "feature_breadth",
        "feature_depth",
        "reports",
        "onboarding",
        "nps",
        "nps_trend",
        "open_tickets",
        "recent_tickets",
        "login_decline",
        "key_features_unused",
        "admin_changed",
        "ticket_spike",
        "nps_detractor",
    ];
    let check_in = [
        (
            Locale::En,
            "Book a short check-in call with the admin this week.",
        ),
        (
            Locale::Ja,
            "今週中に、管理者と短い電話の時間を設けてください。",
        ),
    ];
    for (locale, check_in) in check_in {
        let mut labels = Vec::new();
        for f in factors {
            let mut v = red_alert();
            v["drivers"] = json!([{"factor": f, "points": -1.0}]);
            v["next_step"] = json!(f);
            let r = render_clean(
                NudgeKind::HealthAlert,
                Some(Stage::TurnsRed),
                locale,
                &sent(v),
            );
            let line = r
                .text
                .lines()
                .find(|l| l.starts_with("- "))
                .unwrap_or_else(|| panic!("{f} {locale}: no driver line\n{}", r.text))
                .to_string();
            let raw = match locale {
                Locale::Ja => format!("- {f}（-1）"),
                _ => format!("- {f} (-1)"),
            };
            assert_ne!(line, raw, "{f} {locale}: no label");
            assert!(
                !r.text.contains(check_in),
                "{f} {locale}: no next step of its own"
            );
            labels.push(line);
        }
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), factors.len(), "{locale}: labels are distinct");

        // An unknown name (a model's own factor, say) reads as itself; the step is a check-in.
        let mut v = red_alert();
        v["drivers"] = json!([{"factor": "custom_signal", "points": -3.0}]);
        v["next_step"] = json!("custom_signal");
        let r = render_clean(
            NudgeKind::HealthAlert,
            Some(Stage::TurnsRed),
            locale,
            &sent(v),
        );
        assert!(r.text.contains("- custom_signal"), "{}", r.text);
        assert!(r.text.contains(check_in), "{}", r.text);
    }
}

#[test]
fn an_alert_with_hardly_any_vars_still_reads() {
    let v = sent(json!({"link": "https://app.example/x", "score": 41}));
    let r = render_clean(NudgeKind::HealthAlert, None, Locale::En, &v);
    assert_eq!(r.subject, "Globex needs a look: health 41");
    assert!(
        r.text
            .contains("Suggested next step: Book a short check-in call")
    );
    let ja = render_clean(NudgeKind::HealthAlert, None, Locale::Ja, &v);
    assert_eq!(ja.subject, "Globexの状況をご確認ください: スコア 41");
}

const HEALTH_KINDS: [NudgeKind; 4] = [
    NudgeKind::HealthAlert,
    NudgeKind::RiskNudge,
    NudgeKind::UpsellOffer,
    NudgeKind::AdminWelcome,
];

const CUSTOMER_KINDS: [NudgeKind; 3] = [
    NudgeKind::RiskNudge,
    NudgeKind::UpsellOffer,
    NudgeKind::AdminWelcome,
];

#[test]
fn the_call_to_action_is_the_nudges_link_else_the_app_url_else_none_at_all() {
    let link = "https://app.example.com/reports/weekly";
    for kind in CUSTOMER_KINDS {
        for locale in [Locale::En, Locale::Ja] {
            let mut v = sent(json!({"link": link}));
            let r = render_clean(kind, None, locale, &v);
            assert!(
                r.text.contains(link) && html(&r).contains(&format!("href=\"{link}\"")),
                "{kind} {locale}"
            );
            assert!(
                !r.text.contains(&format!("{APP}\n")),
                "{kind} {locale}: the link wins"
            );

            v["link"] = json!(null);
            let r = render_clean(kind, None, locale, &v);
            assert!(
                r.text.contains(&format!(": {APP}\n")),
                "{kind} {locale}: {}",
                r.text
            );
            assert!(
                html(&r).contains(&format!("href=\"{APP}\"")),
                "{kind} {locale}"
            );

            // Neither: the only link left is the footer's.
            v.as_object_mut().unwrap().remove("app_url");
            let r = render_clean(kind, None, locale, &v);
            assert_eq!(
                r.text.matches("https://").count(),
                1,
                "{kind} {locale}: {}",
                r.text
            );
            assert_eq!(
                r.html.matches("href=").count(),
                1,
                "{kind} {locale}: {}",
                r.html
            );
            assert!(r.text.contains(UNSUBSCRIBE));
        }
    }
}

#[test]
fn health_emails_escape_html_in_names() {
    for kind in CUSTOMER_KINDS {
        for locale in [Locale::En, Locale::Ja] {
            let v = sent(json!({
                "contact_name": "<b>Eve</b>",
                "account_name": "<b>Globex</b> & Co",
                "csm_name": "<i>Sato</i>",
                "role": "executive",
                "from_csm": true,
            }));
            let r = render_clean(kind, None, locale, &v);
            let h = html(&r);
            assert!(
                !h.contains("<b>") && !h.contains("<i>"),
                "{kind} {locale}: {h}"
            );
            assert!(h.contains("&lt;b&gt;Eve&lt;/b&gt;"), "{kind} {locale}: {h}");
            assert!(
                h.contains("&lt;b&gt;Globex&lt;/b&gt; &amp; Co"),
                "{kind} {locale}: {h}"
            );
            assert!(r.text.contains("<b>Eve</b>"), "text is not HTML");
        }
    }
}

#[test]
fn no_health_message_shows_a_missing_var() {
    // Realistic vars, the planner's nulls, nothing at all, and the bare vars of the delivery
    // tests; every stage and both variants.
    let mut nulls = red_alert();
    for k in [
        "previous_band",
        "previous_score",
        "nps",
        "nps_comment",
        "feature",
        "first_step",
    ] {
        nulls[k] = json!(null);
    }
    nulls["moved"] = json!([]);
    nulls["drivers"] = json!([]);
    let sets = [
        sent(red_alert()),
        sent(json!({"band": "red", "feature": "dashboard", "from_csm": true})),
        sent(json!({"role": "executive", "premium": false, "renewal_date": "2027-03-31"})),
        sent(json!({"first_step": "import_data"})),
        sent(nulls),
        // `template_vars` always adds these two (the account id when there is no profile).
        json!({"account_name": "globex", "unsubscribe_url": UNSUBSCRIBE}),
        json!({"account_name": "globex", "unsubscribe_url": UNSUBSCRIBE,
               "link": "https://app.example/x", "score": 41}),
    ];
    let stages = [
        None,
        Some(Stage::TurnsRed),
        Some(Stage::TurnsYellow),
        Some(Stage::AdminChanged),
        Some(Stage::RenewalUpsell),
    ];
    for kind in HEALTH_KINDS {
        for locale in [Locale::En, Locale::Ja] {
            for vars in &sets {
                for stage in stages {
                    for variant in ["a", "b"] {
                        let what = format!("{kind} {locale} {stage:?} {variant} {vars}");
                        let r = render(kind, stage, variant, locale, vars)
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_clean(&what, &r);
                        if kind.audience() == Audience::Customer {
                            assert_kind(&what, &r);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn numbers_and_dates_read_the_way_the_locale_writes_them() {
    for (n, want) in [
        (json!(48000.0), "48,000"),
        (json!(1234567), "1,234,567"),
        (json!(999), "999"),
        (json!(-7.5), "-8"),
        (json!(0.4), "0"),
        (json!("n/a"), "n/a"),
    ] {
        assert_eq!(thousands(Value::from_serialize(&n)), want, "{n}");
    }
    let mut v = sent(red_alert());
    let en = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsRed),
        Locale::En,
        &v,
    );
    assert!(en.text.contains("Renewal: 31 Mar 2027\n"));
    let ja = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsRed),
        Locale::Ja,
        &v,
    );
    assert!(ja.text.contains("更新日: 2027年3月31日\n"));
    // Not a date: shown as it is.
    v["renewal_date"] = json!("next spring");
    let en = render_clean(
        NudgeKind::HealthAlert,
        Some(Stage::TurnsRed),
        Locale::En,
        &v,
    );
    assert!(en.text.contains("Renewal: next spring\n"));
}

// --- The onboarding program and its milestones (`onboarding_welcome`, `milestone`,
// `onboarding_progress`, `csm_task`; `milestones/program.rs` plans them) ---

const DONE: &str = "https://nudge.example/steps/done?t=tok.en";

/// The progress vars of `program::Progress` with `next_step` the next one (null when done),
/// plus the done link `template_vars` adds for a contact's email about a step.
fn progress(done: usize, next: Option<&str>) -> serde_json::Value {
    let mut v = json!({
        "done_steps": done,
        "total_steps": 3,
        "next_step": next,
        "step": next,
    });
    if next.is_some() {
        v["done_url"] = json!(DONE);
    }
    v
}

/// `progress` plus `extra`, as sent.
fn program_vars(done: usize, next: Option<&str>, extra: serde_json::Value) -> serde_json::Value {
    let mut v = progress(done, next);
    if let serde_json::Value::Object(m) = extra {
        for (k, val) in m {
            v[k] = val;
        }
    }
    sent(v)
}

/// Help, never pressure: a customer mail about the program never says they are late.
fn assert_no_pressure(what: &str, r: &Rendered) {
    for s in [&r.subject, &r.text, &r.html] {
        for bad in [
            "haven't",
            "overdue",
            "behind schedule",
            "behind",
            "deadline",
            "遅れ",
            "期限を過ぎ",
        ] {
            assert!(!s.contains(bad), "{what} contains {bad:?}:\n{s}");
        }
    }
}

fn render_program(
    kind: NudgeKind,
    stage: Option<Stage>,
    locale: Locale,
    vars: &serde_json::Value,
) -> Rendered {
    let r = render_clean(kind, stage, locale, vars);
    if kind.audience() == Audience::Customer && vars.get("for_csm").is_none() {
        assert_no_pressure(&format!("{kind} {locale} {stage:?}"), &r);
    }
    r
}

/// The done link: "I've done this" in the text and as a link in the HTML.
fn assert_done_link(what: &str, r: &Rendered, locale: Locale) {
    let (text_word, html_word) = match locale {
        Locale::Ja => ("「完了しました」", ">完了しました</a>"),
        _ => ("\"I've done this\"", ">I've done this</a>"),
    };
    assert!(r.text.contains(&format!("{DONE}\n")), "{what}: {}", r.text);
    assert!(r.text.contains(text_word), "{what}: {}", r.text);
    let h = html(r);
    assert!(h.contains(&format!("href=\"{DONE}\"")), "{what}: {h}");
    assert!(h.contains(html_word), "{what}: {h}");
}

fn assert_no_done_link(what: &str, r: &Rendered) {
    assert!(!r.text.contains(DONE) && !html(r).contains(DONE), "{what}");
    for word in ["I've done this", "完了しました"] {
        assert!(!r.text.contains(word) && !r.html.contains(word), "{what}");
    }
}

/// (step, en `todo`, ja `todo`) of the default plan's steps, in order.
const STEPS: [(&str, &str, &str); 3] = [
    ("invite_users", "invite your team", "メンバーの招待"),
    (
        "import_data",
        "import the data you already have",
        "今お持ちのデータの取り込み",
    ),
    (
        "first_report",
        "create your first report",
        "最初のレポートの作成",
    ),
];

#[test]
fn a_welcome_gives_the_admin_one_first_step_and_its_done_link() {
    for (step, en, ja) in STEPS {
        let v = program_vars(0, Some(step), json!({"role": "admin", "first_step": step}));
        let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::En, &v);
        assert_eq!(r.subject, format!("Welcome: your first step is to {en}"));
        assert!(
            r.text
                .contains(&format!("One step is enough to start: {en}. ")),
            "{}",
            r.text
        );
        assert!(r.text.contains(" then "), "what gets easier: {}", r.text);
        assert!(
            r.text
                .contains(&format!("Start when it suits you: {APP}\n"))
        );
        assert!(html(&r).contains(&format!("href=\"{APP}\"")));
        assert_done_link(step, &r, Locale::En);
        assert!(!r.text.contains("coach"), "standard plan: {}", r.text);

        let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::Ja, &v);
        assert_eq!(
            r.subject,
            format!(
                "ようこそ: 最初の一歩は「{}」です",
                ja.trim_start_matches("今お持ちの")
            )
        );
        assert!(
            r.text.contains(&format!("まずはひとつだけ、「{ja}」から")),
            "{}",
            r.text
        );
        assert_done_link(step, &r, Locale::Ja);
        assert!(!r.text.contains("コーチ"));
    }
    // A step the labels do not know: a generic first step, never its raw name.
    let v = program_vars(
        0,
        Some("connect_sso"),
        json!({"role": "admin", "first_step": "connect_sso"}),
    );
    let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::En, &v);
    assert_eq!(r.subject, "Welcome: one first step to start with");
    assert!(r.text.contains("start: complete the first setup step."));
    assert!(!r.text.contains("sso") && !html(&r).contains("sso"));
    let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::Ja, &v);
    assert!(r.text.contains("「最初の設定ステップ」"), "{}", r.text);
}

#[test]
fn a_welcome_tells_an_executive_what_the_month_brings_without_steps() {
    let v = program_vars(0, Some("invite_users"), json!({"role": "executive"}));
    let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::En, &v);
    assert_eq!(r.subject, "What your team's first 30 days with us bring");
    assert!(r.text.contains("first real result within the month"));
    assert!(!r.text.contains("invite your team"), "{}", r.text);
    assert_no_done_link("executive en", &r);
    let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::Ja, &v);
    assert!(r.text.contains("1か月以内の最初の成果"), "{}", r.text);
    assert_no_done_link("executive ja", &r);
}

#[test]
fn a_premium_welcome_offers_a_session_with_a_coach() {
    for plan in ["Premium", " ENTERPRISE "] {
        let v = program_vars(
            0,
            Some("invite_users"),
            json!({"role": "admin", "first_step": "invite_users", "plan": plan}),
        );
        let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::En, &v);
        assert_in_order(
            &r.text,
            &[
                "invite your team",
                DONE,
                "Your plan includes a session with a coach",
                "Just write to Sato Hanako (sato@vendor.example).",
            ],
        );
        assert!(
            html(&r).contains("<a href=\"mailto:sato@vendor.example\">Sato Hanako</a>"),
            "{}",
            r.html
        );
        let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::Ja, &v);
        assert!(
            r.text.contains("コーチとのセッション")
                && r.text.contains(
                    "担当のSato Hanako（sato@vendor.example）までお気軽にご連絡ください。"
                ),
            "{}",
            r.text
        );
        let exec = program_vars(
            0,
            Some("invite_users"),
            json!({"role": "executive", "plan": plan}),
        );
        let r = render_program(NudgeKind::OnboardingWelcome, None, Locale::En, &exec);
        assert!(r.text.contains("session with a coach"), "{}", r.text);
    }
}

/// What `program::check_nudges` plans for the day-7 check, as sent.
fn week_one(role: &str, done: usize, next: Option<&str>, standing: &str) -> serde_json::Value {
    program_vars(
        done,
        next,
        json!({"role": role, "day": 7, "standing": standing}),
    )
}

#[test]
fn week_one_congratulates_the_admin_and_offers_the_next_step_with_its_done_link() {
    for (i, (step, en, ja)) in STEPS.into_iter().enumerate() {
        let v = week_one("admin", i, Some(step), "on_track");
        let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::En, &v);
        assert_eq!(
            r.subject,
            format!("One week in: {i} of 3 setup steps done"),
            "{step}"
        );
        assert!(
            r.text.contains(&format!("Next, when it suits you: {en}. ")),
            "{}",
            r.text
        );
        assert!(r.text.contains(&format!("Start here: {APP}\n")));
        assert_done_link(step, &r, Locale::En);
        assert!(!r.text.contains("coach"), "standard plan: {}", r.text);

        let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::Ja, &v);
        assert_eq!(
            r.subject,
            format!("ご利用開始から1週間: 3ステップ中{i}ステップ完了")
        );
        assert!(
            r.text.contains(&format!("次は「{ja}」です。")),
            "{}",
            r.text
        );
        assert_done_link(step, &r, Locale::Ja);
        assert!(!r.text.contains("コーチ"));
    }
    let v = week_one("admin", 1, Some("import_data"), "on_track");
    let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::En, &v);
    assert!(
        r.text.contains("1 of 3 setup steps: a good pace"),
        "{}",
        r.text
    );
    assert!(html(&r).contains(">Import your data</a>"), "{}", r.html);
}

#[test]
fn a_premium_week_one_admin_message_offers_a_coach() {
    let mut v = week_one("admin", 1, Some("import_data"), "on_track");
    v["plan"] = json!("enterprise");
    let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::En, &v);
    assert_in_order(
        &r.text,
        &[
            "import the data you already have",
            DONE,
            "Your plan includes a session with a coach",
            "sato@vendor.example",
        ],
    );
    let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::Ja, &v);
    assert!(r.text.contains("コーチとのセッション"), "{}", r.text);
    // The executives' summary stays about outcomes.
    v["role"] = json!("executive");
    let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::En, &v);
    assert!(!r.text.contains("coach"), "{}", r.text);
}

#[test]
fn week_one_tells_an_executive_the_outcome_and_the_counts_never_the_steps() {
    let standings = [
        (
            "on_track",
            "is on course for its first real result",
            "順調に進んでいます",
        ),
        (
            "behind",
            "taking a little longer than planned",
            "予定より少しゆっくり",
        ),
        (
            "stuck",
            "we will get in touch with your team",
            "私たちからチームの皆さまにご連絡し",
        ),
    ];
    for (standing, en, ja) in standings {
        let v = week_one("executive", 1, Some("import_data"), standing);
        let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::En, &v);
        assert_eq!(r.subject, "Your team's first week: 1 of 3 setup steps done");
        assert_in_order(
            &r.text,
            &[
                "your team at Globex has completed 1 of its 3 setup steps",
                en,
                "this month: the weekly numbers",
                "put together automatically",
            ],
        );
        assert!(
            html(&r).contains("<strong>1 of its 3</strong> setup steps"),
            "{standing}"
        );
        for step in ["import the data", "spreadsheet", "Import your data"] {
            assert!(
                !r.text.contains(step) && !r.html.contains(step),
                "{standing}"
            );
        }
        assert_no_done_link(standing, &r);
        assert!(
            r.text
                .contains(&format!("progress whenever you like: {APP}\n"))
        );

        let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::Ja, &v);
        assert_eq!(r.subject, "最初の1週間の進み具合: 3ステップ中1ステップ完了");
        assert_in_order(
            &r.text,
            &[
                "Globexの皆さまは設定ステップ3つのうち1つを完了",
                ja,
                "最初の成果",
            ],
        );
        assert!(!r.text.contains("データの取り込み"), "{}", r.text);
        assert_no_done_link(standing, &r);
    }
}

/// What `program::milestone_nudges` plans for a first use of key features, as sent.
fn first_use(features: &[&str], done: usize, next: Option<&str>) -> serde_json::Value {
    program_vars(
        done,
        next,
        json!({"feature": features[0], "features": features}),
    )
}

#[test]
fn a_first_use_names_every_feature_first_used_and_what_it_eases() {
    let v = first_use(&["dashboard", "report_builder"], 2, Some("first_report"));
    let stage = Some(Stage::FirstFeatureUse);
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &v);
    assert_eq!(
        r.subject,
        "A good start with the dashboard and the report builder"
    );
    assert_in_order(
        &r.text,
        &[
            "You have just used the dashboard and the report builder for the first time.",
            "one glance",
            "nobody copies figures into a spreadsheet",
            "One next step, when it suits you: create your first report.",
            APP,
        ],
    );
    assert_done_link("first use en", &r, Locale::En);
    let r = render_program(NudgeKind::Milestone, stage, Locale::Ja, &v);
    assert!(
        r.subject
            .starts_with("ダッシュボードとレポートビルダーを使い始めて"),
        "{}",
        r.subject
    );
    assert_in_order(
        &r.text,
        &[
            "ダッシュボードとレポートビルダーを初めてお使いいただきました。",
            "ひと目で",
            "表計算ソフト",
            "次の一歩は「最初のレポートの作成」です。",
        ],
    );
    assert_done_link("first use ja", &r, Locale::Ja);

    let one = first_use(&["integration"], 1, Some("import_data"));
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &one);
    assert_eq!(r.subject, "A good start with integrations");
    assert!(
        r.text
            .contains("You have just used integrations for the first time. New records")
    );
    let three = first_use(
        &["dashboard", "integration", "workflow"],
        1,
        Some("import_data"),
    );
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &three);
    assert!(
        r.subject
            .ends_with("the dashboard, integrations and workflows"),
        "{}",
        r.subject
    );
    let r = render_program(NudgeKind::Milestone, stage, Locale::Ja, &three);
    assert!(
        r.text
            .contains("ダッシュボード、データ連携とワークフローを"),
        "{}",
        r.text
    );

    // Only `feature` (an older plan), and every step done: no next step, no done link.
    let mut done = program_vars(3, None, json!({"feature": "workflow"}));
    done["done_url"] = json!(null);
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &done);
    assert!(
        r.text.contains("You have just used workflows"),
        "{}",
        r.text
    );
    assert_no_done_link("first use, all done", &r);
    assert!(!r.text.contains("next step"), "{}", r.text);
}

#[test]
fn a_first_report_is_celebrated_with_the_next_step() {
    let v = program_vars(2, Some("invite_users"), json!({}));
    let stage = Some(Stage::FirstReport);
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &v);
    assert_eq!(r.subject, "Your first report is ready");
    assert_in_order(
        &r.text,
        &[
            "Congratulations: your first report is ready.",
            "come together by themselves",
            "One next step, when it suits you: invite your team.",
            "about 5 minutes",
        ],
    );
    assert_done_link("first report en", &r, Locale::En);
    let r = render_program(NudgeKind::Milestone, stage, Locale::Ja, &v);
    assert_eq!(r.subject, "最初のレポートができました");
    assert!(
        r.text.contains("次の一歩は「メンバーの招待」です。"),
        "{}",
        r.text
    );
    assert_done_link("first report ja", &r, Locale::Ja);
}

#[test]
fn onboarding_complete_tells_the_admin_it_is_done_and_the_executive_the_outcome() {
    let stage = Some(Stage::OnboardingComplete);
    let admin = program_vars(3, None, json!({"role": "admin"}));
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &admin);
    assert_eq!(r.subject, "Setup complete: all 3 steps done");
    assert!(
        r.text
            .contains("All 3 setup steps are done. Congratulations!")
    );
    assert!(
        r.text
            .contains(&format!("numbers whenever you like: {APP}\n"))
    );
    assert_no_done_link("complete admin", &r);
    let r = render_program(NudgeKind::Milestone, stage, Locale::Ja, &admin);
    assert!(
        r.text.contains("設定ステップ3つがすべて完了しました。"),
        "{}",
        r.text
    );

    let exec = program_vars(3, None, json!({"role": "executive"}));
    let r = render_program(NudgeKind::Milestone, stage, Locale::En, &exec);
    assert_eq!(r.subject, "Setup complete: your team's first result is in");
    assert_in_order(
        &r.text,
        &[
            "Your team at Globex has finished its setup: all 3 steps are done.",
            "put together automatically",
            "less time spent compiling them",
        ],
    );
    let r = render_program(NudgeKind::Milestone, stage, Locale::Ja, &exec);
    assert!(r.text.contains("集計にかかる時間も減ります"), "{}", r.text);
}

#[test]
fn a_milestone_without_a_link_reads_without_one() {
    let mut v = week_one("admin", 1, Some("import_data"), "on_track");
    v.as_object_mut().unwrap().remove("app_url");
    v.as_object_mut().unwrap().remove("done_url");
    for locale in [Locale::En, Locale::Ja] {
        let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), locale, &v);
        assert_eq!(r.text.matches("https://").count(), 1, "{}", r.text);
        assert_eq!(r.html.matches("href=").count(), 1, "{}", r.html);
    }
    let r = render_program(NudgeKind::Milestone, Some(Stage::WeekOne), Locale::En, &v);
    assert!(
        r.text.contains("Start whenever it suits you."),
        "{}",
        r.text
    );
}

/// The program's customer kinds and the stages they are sent at.
const PROGRAM_EMAILS: [(NudgeKind, Option<Stage>); 7] = [
    (NudgeKind::OnboardingWelcome, None),
    (NudgeKind::OnboardingProgress, Some(Stage::Behind)),
    (NudgeKind::OnboardingProgress, Some(Stage::Stuck)),
    (NudgeKind::Milestone, Some(Stage::WeekOne)),
    (NudgeKind::Milestone, Some(Stage::FirstFeatureUse)),
    (NudgeKind::Milestone, Some(Stage::FirstReport)),
    (NudgeKind::Milestone, Some(Stage::OnboardingComplete)),
];

/// Realistic vars, the planner's nulls and empties, and the bare vars of a message without an
/// account profile, for each role.
fn program_var_sets() -> Vec<serde_json::Value> {
    let mut sets = Vec::new();
    for role in ["admin", "executive"] {
        sets.push(program_vars(
            1,
            Some("import_data"),
            json!({"role": role, "first_step": "import_data", "day": 7, "standing": "on_track",
                   "feature": "dashboard", "features": ["dashboard"], "plan": "premium"}),
        ));
        sets.push(program_vars(
            0,
            None,
            json!({"role": role, "first_step": null, "day": 14, "standing": "stuck",
                   "feature": null, "features": [], "plan": null, "csm_name": null,
                   "csm_email": null, "contact_name": null, "tier": null}),
        ));
        sets.push(json!({"role": role, "account_name": "globex",
                         "unsubscribe_url": UNSUBSCRIBE}));
    }
    sets
}

#[test]
fn no_program_email_shows_a_missing_var() {
    for (kind, stage) in PROGRAM_EMAILS {
        for locale in [Locale::En, Locale::Ja] {
            for vars in program_var_sets() {
                for variant in ["a", "b"] {
                    let what = format!("{kind} {stage:?} {locale} {variant} {vars}");
                    let r = render(kind, stage, variant, locale, &vars)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_clean(&what, &r);
                    assert_kind(&what, &r);
                    assert_no_pressure(&what, &r);
                }
            }
        }
    }
}

#[test]
fn program_emails_escape_html_in_names() {
    for (kind, stage) in PROGRAM_EMAILS {
        for locale in [Locale::En, Locale::Ja] {
            for role in ["admin", "executive"] {
                let v = program_vars(
                    1,
                    Some("import_data"),
                    json!({"role": role, "contact_name": "<b>Eve</b>",
                           "account_name": "<b>Globex</b> & Co", "csm_name": "<i>Sato</i>",
                           "plan": "premium", "features": ["<script>x</script>"],
                           "feature": "<script>x</script>"}),
                );
                let r = render_program(kind, stage, locale, &v);
                let h = html(&r);
                for raw in ["<b>", "<i>", "<script>"] {
                    assert!(!h.contains(raw), "{kind} {stage:?} {locale} {role}: {h}");
                }
                assert!(h.contains("&lt;b&gt;Eve&lt;/b&gt;"), "{kind} {locale}: {h}");
                assert!(r.text.contains("<b>Eve</b>"), "text is not HTML");
            }
        }
    }
}

/// What `program::check_nudges` plans for the admin at a check that finds the account behind
/// or stuck, as sent.
fn check(done: usize, next: &str, day: i64, standing: &str) -> serde_json::Value {
    program_vars(
        done,
        Some(next),
        json!({"role": "admin", "day": day, "standing": standing}),
    )
}

#[test]
fn a_behind_or_stuck_admin_gets_the_one_next_step_and_an_offer_of_help() {
    for (stage, standing) in [(Stage::Behind, "behind"), (Stage::Stuck, "stuck")] {
        for (i, (step, en, ja)) in STEPS.into_iter().enumerate() {
            let v = check(i, step, 14, standing);
            let what = format!("{standing} {step}");
            let r = render_program(NudgeKind::OnboardingProgress, Some(stage), Locale::En, &v);
            assert!(
                r.subject.ends_with(": your next setup step"),
                "{}",
                r.subject
            );
            let count = if i == 0 {
                "One step is enough to start: ".to_string()
            } else {
                format!("{i} of 3 setup steps are done. Next, when it suits you: ")
            };
            assert_in_order(
                &r.text,
                &[
                    &count,
                    &format!("{en}. "),
                    &format!("Start here: {APP}\n"),
                    "Would 20 minutes with us help?",
                    "Just write to Sato Hanako (sato@vendor.example).",
                ],
            );
            assert_eq!(
                r.text.starts_with("Hi Ann,\n\nBusy weeks happen. "),
                standing == "stuck",
                "{what}: {}",
                r.text
            );
            assert_done_link(&what, &r, Locale::En);
            assert!(html(&r).contains("href=\"mailto:sato@vendor.example\""));
            assert!(!r.text.contains("coach"), "{what}");

            let r = render_program(NudgeKind::OnboardingProgress, Some(stage), Locale::Ja, &v);
            assert!(
                r.subject.starts_with("次の設定ステップ: 「"),
                "{}",
                r.subject
            );
            assert_in_order(
                &r.text,
                &[
                    &format!("「{ja}」"),
                    "20分ほど、私たちと一緒に進めてみませんか。",
                    "担当のSato Hanako（sato@vendor.example）",
                ],
            );
            assert_done_link(&what, &r, Locale::Ja);
        }
    }
}

#[test]
fn a_premium_account_behind_is_offered_a_coach_instead_of_20_minutes() {
    let mut v = check(1, "import_data", 14, "behind");
    v["plan"] = json!("PREMIUM");
    for stage in [Stage::Behind, Stage::Stuck] {
        let r = render_program(NudgeKind::OnboardingProgress, Some(stage), Locale::En, &v);
        assert!(
            r.text.contains("Your plan includes a session with a coach"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("20 minutes"), "one offer: {}", r.text);
        let r = render_program(NudgeKind::OnboardingProgress, Some(stage), Locale::Ja, &v);
        assert!(r.text.contains("コーチとのセッション") && !r.text.contains("20分"));
    }
}

#[test]
fn a_step_is_offered_without_a_word_about_the_steps_after_it() {
    // The words of each default step, and of the steps after it.
    let later = [
        (
            "invite_users",
            vec!["import", "report", "取り込み", "レポート"],
        ),
        ("import_data", vec!["report", "レポート"]),
    ];
    for (step, words) in later {
        let emails = [
            (
                NudgeKind::OnboardingProgress,
                Some(Stage::Behind),
                check(0, step, 14, "behind"),
            ),
            (
                NudgeKind::Milestone,
                Some(Stage::WeekOne),
                week_one("admin", 0, Some(step), "on_track"),
            ),
            (
                NudgeKind::OnboardingWelcome,
                None,
                program_vars(0, Some(step), json!({"role": "admin", "first_step": step})),
            ),
        ];
        for (kind, stage, v) in emails {
            for locale in [Locale::En, Locale::Ja] {
                let r = render_program(kind, stage, locale, &v);
                for w in &words {
                    assert!(
                        !r.subject.to_lowercase().contains(w) && !r.text.to_lowercase().contains(w),
                        "{kind} {locale} {step}: {w}\n{}",
                        r.text
                    );
                }
            }
        }
    }
}

/// What `program::check_nudges` plans for the CSM of a stuck account, as `template_vars` makes
/// it: no unsubscribe link or done link (not a customer email), the days since the last step.
fn csm_copy(last: Option<(&str, i64)>, has_admin: bool) -> serde_json::Value {
    let mut v = sent(json!({
        "done_steps": 1, "total_steps": 3, "next_step": "import_data", "step": "import_data",
        "day": 14, "standing": "stuck", "for_csm": true, "has_admin": has_admin,
        "last_step_at": last.map(|(at, _)| at),
    }));
    if let Some((_, days)) = last {
        v["days_since_last_step"] = json!(days);
    }
    let m = v.as_object_mut().unwrap();
    m.remove("unsubscribe_url");
    if !has_admin {
        m.remove("contact_name");
    }
    v
}

#[test]
fn the_csm_copy_of_a_stuck_account_says_how_long_and_suggests_one_action_in_text_only() {
    let stage = Some(Stage::Stuck);
    let v = csm_copy(Some(("2026-11-05T10:00:00+00:00", 9)), true);
    let r = render_program(NudgeKind::OnboardingProgress, stage, Locale::En, &v);
    assert_eq!(
        r.subject,
        "Globex: onboarding stalled on day 14 (1 of 3 steps done)"
    );
    assert!(r.html.is_empty(), "SNS: text only");
    assert_in_order(
        &r.text,
        &[
            "Globex's onboarding has stalled: no setup step in 9 days.\n",
            "Day of the program: 14 of 30\n",
            "Steps done: 1 of 3\n",
            "Last step: 9 days ago (5 Nov 2026)\n",
            "Next step: Import your data\n",
            "Admin: Ann\n",
            "\nSuggested action: offer Ann a 20-minute setup call to do the next step together \
             (Import your data).",
        ],
    );
    for customer in [
        "Hi Ann",
        "Unsubscribe",
        "I've done this",
        "Would 20 minutes",
        "--",
    ] {
        assert!(!r.text.contains(customer), "{customer}: {}", r.text);
    }
    let ja = render_program(NudgeKind::OnboardingProgress, stage, Locale::Ja, &v);
    assert!(ja.html.is_empty());
    // SNS keeps only the ASCII of a subject: it still says what and where.
    assert!(
        ja.subject
            .starts_with("[onboarding stuck] Globex day 14 (1/3): "),
        "{}",
        ja.subject
    );
    assert_in_order(
        &ja.text,
        &[
            "最後のステップから9日間、新しいステップの完了がありません。\n",
            "プログラム: 30日間のうち14日目\n",
            "完了したステップ: 3ステップ中1ステップ\n",
            "最後のステップ: 9日前（2026年11月5日）\n",
            "次のステップ: データの取り込み\n",
            "おすすめの次の一手: Ann様に20分の設定サポートの通話をご提案し",
        ],
    );

    // No step yet, and no admin: finding the admin comes first.
    let v = csm_copy(None, false);
    let r = render_program(NudgeKind::OnboardingProgress, stage, Locale::En, &v);
    assert_in_order(
        &r.text,
        &[
            "no setup step yet, 14 days into the program.\n",
            "Last step: no step yet\n",
            "Admin: no admin contact yet\n",
            "Suggested action: find out who administers Globex and add them as a contact with \
             the admin role",
        ],
    );
    assert!(!r.text.contains("20-minute"), "one action: {}", r.text);
    let ja = render_program(NudgeKind::OnboardingProgress, stage, Locale::Ja, &v);
    assert_in_order(
        &ja.text,
        &[
            "プログラム開始から14日間、まだ完了したステップがありません。",
            "最後のステップ: まだありません\n",
            "管理者: 未登録\n",
            "おすすめの次の一手: Globexの管理者がどなたかを確認し",
        ],
    );

    // A premium account's admin is offered the coaching session their plan includes.
    let mut v = csm_copy(Some(("2026-11-05T10:00:00+00:00", 1)), true);
    v["plan"] = json!("Enterprise");
    let r = render_program(NudgeKind::OnboardingProgress, stage, Locale::En, &v);
    assert!(r.text.contains("no setup step in 1 day.\n"), "{}", r.text);
    assert!(
        r.text
            .contains("offer Ann the session with a coach that their plan includes")
    );
}

#[test]
fn no_csm_copy_shows_a_missing_var() {
    let mut sets = vec![
        csm_copy(Some(("2026-11-05T10:00:00+00:00", 9)), true),
        csm_copy(None, false),
        json!({"account_name": "globex", "for_csm": true}),
    ];
    // A last step time without the days (not a time `template_vars` could read).
    let mut v = csm_copy(Some(("2026-11-05T10:00:00+00:00", 0)), true);
    v.as_object_mut().unwrap().remove("days_since_last_step");
    sets.push(v);
    for vars in &sets {
        for locale in [Locale::En, Locale::Ja] {
            for variant in ["a", "b"] {
                let what = format!("{locale} {variant} {vars}");
                let r = render(
                    NudgeKind::OnboardingProgress,
                    Some(Stage::Stuck),
                    variant,
                    locale,
                    vars,
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_clean(&what, &r);
                assert!(r.html.is_empty(), "{what}");
            }
        }
    }
}

#[test]
fn with_no_admin_at_the_welcome_the_csm_is_asked_to_find_one() {
    // What `program::welcome_nudges` plans (the CSM's message: no contact, no unsubscribe link).
    let mut v = sent(json!({"task": "no_admin"}));
    for k in ["contact_name", "unsubscribe_url"] {
        v.as_object_mut().unwrap().remove(k);
    }
    let stage = Some(Stage::NoAdmin);
    let r = render_clean(NudgeKind::CsmTask, stage, Locale::En, &v);
    assert_eq!(r.subject, "Task: find the admin of Globex");
    assert!(r.html.is_empty());
    assert_in_order(
        &r.text,
        &[
            "Globex has no admin contact, so its onboarding welcome",
            "could not go out.\n",
            "Tier: tech touch\n",
            "Plan: standard\n",
            "\nNext step: find out who administers Globex and add them as a contact with the \
             admin role",
        ],
    );
    assert!(
        !r.text.contains("no_admin") && !r.text.contains("call"),
        "{}",
        r.text
    );
    let ja = render_clean(NudgeKind::CsmTask, stage, Locale::Ja, &v);
    assert!(
        ja.subject.starts_with("[no admin] Globex: "),
        "{}",
        ja.subject
    );
    assert_in_order(
        &ja.text,
        &[
            "Globexには管理者の連絡先が登録されていないため",
            "ティア: テックタッチ\n",
            "次の一手: Globexの管理者がどなたかを確認し、管理者ロールの連絡先として登録してください。",
        ],
    );
    assert!(!ja.text.contains("no_admin"));
    // The bare vars of an account without a profile still read.
    for locale in [Locale::En, Locale::Ja] {
        let bare = json!({"task": "no_admin", "account_name": "globex"});
        let r = render_clean(NudgeKind::CsmTask, stage, locale, &bare);
        assert!(r.text.contains("globex"), "{}", r.text);
    }
}

#[test]
fn a_follow_up_task_still_asks_for_a_call() {
    // What `delivery::followup` plans when an email went unopened.
    let v = sent(json!({
        "original_kind": "risk_nudge", "original_subject": "A 3-minute way",
        "original_sent_at": "2026-11-20T00:00:00Z", "days": 3,
    }));
    let r = render_clean(NudgeKind::CsmTask, None, Locale::En, &v);
    assert_eq!(r.subject, "Task: call Ann at Globex");
    assert!(
        r.text
            .starts_with("Globex: call Ann.\nWhy: the \"risk_nudge\" email sent"),
        "{}",
        r.text
    );
    let r = render_clean(NudgeKind::CsmTask, None, Locale::Ja, &v);
    assert_eq!(r.subject, "タスク: GlobexのAnn様に電話");
}
