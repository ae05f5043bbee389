//! `nudge preview KIND`: a message as a customer (or the CSM) would get it, with no AWS.
//!
//! Nothing here writes its own variables: a sample account (profile, admin, executive, user)
//! goes into an in-memory store, the nudge comes from the feature's own planner (deadline
//! stages, the onboarding program, the health playbooks, follow-ups) over sample inputs, and
//! the send path's own preview resolves recipient, locale and variables and renders it. So the
//! preview shows what those planners and templates produce today, not a copy of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use nudge_shared::Deps;
use nudge_shared::channels::{Mailer, Notification, Notifier, OutgoingEmail, SendError};
use nudge_shared::config::Config;
use nudge_shared::delivery::followup::follow_up_for;
use nudge_shared::delivery::{Preview, preview};
use nudge_shared::domain::{Audience, Locale, Member, Nudge, NudgeKind, Role, Stage, Tier};
use nudge_shared::events::{AccountProfile, ContactProfile, Csm, Severity};
use nudge_shared::health::actions::{self, BandChange, Facts};
use nudge_shared::health::model::Band;
use nudge_shared::health::score::{DayUsage, HealthInputs, NpsResponse, Ticket, score};
use nudge_shared::health::{HealthModel, diff};
use nudge_shared::milestones::program::{self, First, Progress, Standing};
use nudge_shared::registry;
use nudge_shared::reminders::service::stage_nudges;
use nudge_shared::store::memory::MemoryStore;
use nudge_shared::store::{AccountChange, DeadlineRecord, DeadlineStatus, ProfileStore};
use serde_json::json;

/// A usage error (exit code 2): an unknown stage, a role the kind never goes to, `--html` of an
/// SNS message.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// What to preview.
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub kind: NudgeKind,
    /// A stage name; `None`: the kind's first (see [`stages`]).
    pub stage: Option<String>,
    pub locale: Locale,
    /// The recipient's role; `None`: the first the planner addresses (usually the admin).
    pub role: Option<Role>,
    /// The account's plan (`premium` and `enterprise` get the coaching offer).
    pub plan: String,
}

/// The stages a kind is planned with, the first being the default; `None` is "no stage" (a
/// `csm_task` follow-up).
pub fn stages(kind: NudgeKind) -> &'static [Option<Stage>] {
    use Stage::*;
    match kind {
        NudgeKind::DeadlineReminder => &[Some(TMinus3d), Some(MorningOf), Some(Final)],
        NudgeKind::OnboardingWelcome | NudgeKind::AutomationPaused => &[None],
        NudgeKind::Milestone => &[
            Some(WeekOne),
            Some(FirstFeatureUse),
            Some(FirstReport),
            Some(OnboardingComplete),
        ],
        NudgeKind::OnboardingProgress => &[Some(Behind), Some(Stuck)],
        NudgeKind::HealthAlert => &[Some(TurnsRed), Some(AdminChanged)],
        NudgeKind::RiskNudge => &[Some(TurnsRed), Some(TurnsYellow)],
        NudgeKind::AdminWelcome => &[Some(AdminChanged)],
        NudgeKind::UpsellOffer => &[Some(RenewalUpsell)],
        NudgeKind::CsmTask => &[None, Some(NoAdmin)],
    }
}

fn stage_name(s: Option<Stage>) -> &'static str {
    s.map(|s| s.as_str()).unwrap_or("(none: a follow-up task)")
}

/// The kind's stage named `name` (`None`: its default), or a usage error listing them.
pub fn pick_stage(kind: NudgeKind, name: Option<&str>) -> Result<Option<Stage>, Usage> {
    let valid = stages(kind);
    let Some(name) = name else {
        return Ok(valid[0]);
    };
    let listed = || {
        valid
            .iter()
            .map(|s| stage_name(*s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match Stage::parse(name.trim()) {
        Some(s) if valid.contains(&Some(s)) => Ok(Some(s)),
        _ if valid == [None] => Err(Usage(format!("{kind} has no stages (got --stage {name})"))),
        _ => Err(Usage(format!(
            "unknown stage {name:?} for {kind}; valid stages: {}",
            listed()
        ))),
    }
}

/// What `nudge preview` prints.
#[derive(Debug, Clone)]
pub struct PreviewOutput {
    pub kind: NudgeKind,
    pub stage: Option<Stage>,
    pub role: Option<Role>,
    pub preview: Preview,
}

impl PreviewOutput {
    /// Recipient and subject, then the plain-text body.
    pub fn text(&self) -> String {
        let p = &self.preview;
        let mut out = String::new();
        let to =
            p.to.as_deref()
                .unwrap_or("(nobody: it would be blocked no_recipient)");
        let role = self
            .role
            .map(|r| format!(" ({})", r.as_str()))
            .unwrap_or_default();
        writeln!(out, "To: {to}{role}").ok();
        writeln!(out, "Subject: {}", p.rendered.subject).ok();
        out.push('\n');
        out.push_str(&p.rendered.text);
        out
    }

    /// The HTML body; a usage error for messages that have none (SNS).
    pub fn html(&self) -> Result<String, Usage> {
        if self.preview.rendered.html.is_empty() {
            return Err(Usage(format!(
                "{} goes to the CSM over SNS as text: it has no HTML body",
                self.kind
            )));
        }
        Ok(self.preview.rendered.html.clone())
    }

    pub fn json(&self) -> serde_json::Value {
        let p = &self.preview;
        json!({
            "kind": self.kind.as_str(),
            "stage": self.stage.map(|s| s.as_str()),
            "role": self.role.map(|r| r.as_str()),
            "channel": p.channel.as_str(),
            "locale": p.locale.as_str(),
            "to": p.to,
            "subject": p.rendered.subject,
            "text": p.rendered.text,
            "html": p.rendered.html,
            "vars": p.vars,
        })
    }
}

/// Renders the preview. `env` supplies the deployment's settings that change the text
/// (`NUDGE_COMPANY_NAME`, `NUDGE_PRODUCT_NAME`, `NUDGE_APP_URL`, `NUDGE_PUBLIC_BASE_URL`,
/// `NUDGE_CSM_TOPIC_ARN`), as the functions read them.
pub async fn render(
    req: &PreviewRequest,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PreviewOutput> {
    let stage = pick_stage(req.kind, req.stage.as_deref())?;
    let world = World::new(req, stage);
    let (deps, now) = world.deps(&env).await?;
    let candidates = world.plan(req.kind, stage, &deps, now).await?;
    let (role, nudge) = world.choose(req, stage, candidates)?;
    let out = preview(&deps, registry::render_vars, &nudge, nudge.send_at.max(now))
        .await
        .with_context(|| format!("rendering {}", req.kind))?;
    Ok(PreviewOutput {
        kind: req.kind,
        stage,
        role,
        preview: out,
    })
}

const ACCOUNT: &str = "acme";
const ADMIN: &str = "u-admin";
const EXEC: &str = "u-exec";
const USER: &str = "u-user";

/// The sample account, in the request's language and a matching zone.
struct World {
    locale: Locale,
    tz: Tz,
    plan: String,
    /// Tier of the account's own: the default playbooks send risk emails on tech touch only,
    /// and follow-ups become CSM tasks on high and low touch.
    tier: Option<Tier>,
    /// Tuesday 10:00 in the account's zone: inside business hours, so nothing is deferred.
    now: DateTime<Utc>,
    model: HealthModel,
}

impl World {
    fn new(req: &PreviewRequest, stage: Option<Stage>) -> World {
        let tz = match req.locale {
            Locale::Ja => chrono_tz::Asia::Tokyo,
            Locale::En => chrono_tz::America::New_York,
        };
        let now = local(tz, NaiveDate::from_ymd_opt(2026, 11, 17), 10);
        let tier = match (req.kind, stage) {
            (NudgeKind::RiskNudge, _) => Some(Tier::TechTouch),
            (NudgeKind::CsmTask, None) => Some(Tier::HighTouch),
            _ => None,
        };
        World {
            locale: req.locale,
            tz,
            plan: req.plan.clone(),
            tier,
            now,
            model: HealthModel::default(),
        }
    }

    fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.tz).date_naive()
    }

    fn ja(&self) -> bool {
        self.locale == Locale::Ja
    }

    fn profile(&self) -> AccountProfile {
        let today = self.today();
        let (name, csm) = if self.ja() {
            (
                "アクメ物流株式会社",
                ("山本 花子", "yamamoto@vendor.example"),
            )
        } else {
            (
                "Acme Logistics",
                ("Sam Rivera", "sam.rivera@vendor.example"),
            )
        };
        AccountProfile {
            name: name.into(),
            plan: self.plan.clone(),
            industry: "logistics".into(),
            tier: self.tier,
            csm: Some(Csm {
                name: csm.0.into(),
                email: csm.1.into(),
            }),
            timezone: self.tz,
            locale: self.locale,
            contract_start: today - Duration::days(14),
            renewal_date: today + Duration::days(45),
            renewals: 1,
            arr: 48_000.0,
        }
    }

    fn contacts(&self) -> [(&'static str, Role, &'static str, &'static str); 3] {
        if self.ja() {
            [
                (ADMIN, Role::Admin, "田中 美咲", "tanaka@acme.example"),
                (EXEC, Role::Executive, "佐藤 健", "sato@acme.example"),
                (USER, Role::User, "鈴木 一郎", "suzuki@acme.example"),
            ]
        } else {
            [
                (ADMIN, Role::Admin, "Ann Lee", "ann.lee@acme.example"),
                (
                    EXEC,
                    Role::Executive,
                    "Ben Carter",
                    "ben.carter@acme.example",
                ),
                (USER, Role::User, "Cory Diaz", "cory.diaz@acme.example"),
            ]
        }
    }

    fn role_of(&self, contact: Option<&str>) -> Option<Role> {
        match contact {
            // No contact on a customer nudge: the send path resolves the account's admin.
            None => Some(Role::Admin),
            Some(c) => self
                .contacts()
                .iter()
                .find(|(id, ..)| *id == c)
                .map(|(_, role, ..)| *role),
        }
    }

    /// The store the send path reads, and the "now" of the sample.
    async fn deps(&self, env: &impl Fn(&str) -> Option<String>) -> Result<(Deps, DateTime<Utc>)> {
        let store = MemoryStore::new();
        let at = self.now - Duration::days(30);
        store.upsert_account(ACCOUNT, &self.profile(), at).await?;
        for (id, role, name, email) in self.contacts() {
            let profile = ContactProfile {
                email: email.into(),
                phone: None,
                name: name.into(),
                role,
                timezone: None,
                locale: Some(self.locale),
            };
            store.upsert_contact(ACCOUNT, id, &profile, at).await?;
        }
        let admin = AccountChange::AdminChanged {
            contact_id: ADMIN.into(),
        };
        store.change_account(ACCOUNT, &admin, at).await?;
        let config = Config::from_lookup(|k| match k {
            "NUDGE_TABLE" => Some("preview".into()),
            "NUDGE_PUBLIC_BASE_URL" => env(k).or_else(|| Some("https://nudge.example.com".into())),
            "NUDGE_CSM_TOPIC_ARN" => env(k)
                .or_else(|| Some("arn:aws:sns:us-east-1:000000000000:nudge-csm-alerts".into())),
            "NUDGE_COMPANY_NAME" | "NUDGE_PRODUCT_NAME" | "NUDGE_APP_URL" => env(k),
            _ => None,
        })
        .context("preview configuration")?;
        let deps = Deps::new(
            config,
            Arc::new(store),
            Arc::new(NeverSends),
            Arc::new(NeverSends),
            // Sample links are signed with the local development keys: never valid deployed.
            crate::local::local_keys(),
        );
        Ok((deps, self.now))
    }

    fn members(&self) -> Vec<Member<'static>> {
        [
            (ADMIN, Role::Admin),
            (EXEC, Role::Executive),
            (USER, Role::User),
        ]
        .into_iter()
        .map(|(contact_id, role)| Member { contact_id, role })
        .collect()
    }

    fn steps(&self) -> Vec<String> {
        self.model.onboarding_steps(&self.plan).to_vec()
    }

    /// Progress with the plan's first `done` steps done, a day apart from the contract start.
    fn progress(&self, done: usize) -> Progress {
        let start = self.now - Duration::days(14);
        let firsts: BTreeMap<String, DateTime<Utc>> = self
            .steps()
            .iter()
            .take(done)
            .enumerate()
            .map(|(i, s)| (format!("step_{s}"), start + Duration::days(i as i64 + 1)))
            .collect();
        Progress::from_firsts(&self.steps(), &firsts)
    }

    /// The nudges the kind's planner makes for the stage (possibly several, for several
    /// recipients or kinds).
    async fn plan(
        &self,
        kind: NudgeKind,
        stage: Option<Stage>,
        deps: &Deps,
        now: DateTime<Utc>,
    ) -> Result<Vec<Nudge>> {
        let members = self.members();
        let audience = program::Audience {
            account_id: ACCOUNT,
            admin: Some(ADMIN),
            members: &members,
            now,
        };
        let profile = self.profile();
        let nudges = match (kind, stage) {
            (NudgeKind::DeadlineReminder, _) => {
                // Due Friday 17:00 local: every stage falls in waking hours.
                let due = local(self.tz, Some(self.today() + Duration::days(3)), 17);
                let (title, link) = if self.ja() {
                    ("トライアル期間の終了", "https://app.example.com/billing")
                } else {
                    ("Trial period ends", "https://app.example.com/billing")
                };
                let d = DeadlineRecord {
                    deadline_id: "trial-end".into(),
                    contact_id: None,
                    due_at: due,
                    title: title.into(),
                    kind: Some("trial_end".into()),
                    link: Some(link.into()),
                    status: DeadlineStatus::Active,
                    updated_at: due - Duration::days(5),
                };
                // One nudge per role: the deadline names whoever it is for.
                let policy = nudge_shared::reminders::service::policy(&deps.config);
                [ADMIN, EXEC, USER]
                    .into_iter()
                    .flat_map(|c| {
                        let d = DeadlineRecord {
                            contact_id: Some(c.into()),
                            ..d.clone()
                        };
                        stage_nudges(ACCOUNT, &d, self.tz, d.updated_at, &[], &policy)
                    })
                    .collect()
            }
            (NudgeKind::OnboardingWelcome, _) => program::welcome_nudges(&audience, &self.progress(0)),
            (NudgeKind::CsmTask, Some(Stage::NoAdmin)) => {
                let no_admin = program::Audience {
                    admin: None,
                    ..audience
                };
                program::welcome_nudges(&no_admin, &self.progress(0))
            }
            (NudgeKind::Milestone, Some(Stage::WeekOne)) => {
                program::check_nudges(&audience, 7, Standing::OnTrack, &self.progress(1))
            }
            (NudgeKind::OnboardingProgress, Some(s)) => {
                let standing = if s == Stage::Stuck {
                    Standing::Stuck
                } else {
                    Standing::Behind
                };
                program::check_nudges(&audience, 14, standing, &self.progress(0))
            }
            (NudgeKind::Milestone, Some(s)) => self.milestones(&audience, s),
            (NudgeKind::HealthAlert | NudgeKind::RiskNudge, Some(Stage::TurnsRed | Stage::TurnsYellow)) => {
                self.band_play(&profile, stage == Some(Stage::TurnsRed))
            }
            (NudgeKind::RiskNudge, _) => Vec::new(),
            (NudgeKind::HealthAlert | NudgeKind::AdminWelcome, _) => {
                actions::admin_nudges(&self.model, ACCOUNT, &profile, ADMIN, now)
            }
            (NudgeKind::UpsellOffer, _) => self.upsell(&profile),
            (NudgeKind::CsmTask, _) => self.follow_up(deps, now).await?,
            (NudgeKind::AutomationPaused, _) => [ADMIN, EXEC, USER]
                .into_iter()
                .map(|c| {
                    // What ingest plans for a `customer_replied` (`ingest::pause`).
                    Nudge::new(
                        format!("paused:evt-reply-{c}"),
                        ACCOUNT,
                        Some(c.into()),
                        NudgeKind::AutomationPaused,
                        now,
                        "ingest",
                        now,
                    )
                    .with_vars(json!({ "paused_at": nudge_shared::domain::log::rfc3339_seconds::format(&(now - Duration::minutes(3))) }))
                })
                .collect(),
            (NudgeKind::Milestone | NudgeKind::OnboardingProgress, None) => Vec::new(),
        };
        // A customer kind's copy for the CSM (a stuck account's) is not the customer's message.
        Ok(nudges
            .into_iter()
            .filter(|n| n.kind == kind && n.stage == stage && n.audience() == kind.audience())
            .collect())
    }

    fn milestones(&self, audience: &program::Audience<'_>, stage: Stage) -> Vec<Nudge> {
        let steps = self.steps();
        let keys = self.model.key_features(&self.plan).to_vec();
        let feature = keys.first().cloned().unwrap_or_else(|| "dashboard".into());
        let key = format!("feature_{feature}");
        let mut out = Vec::new();
        for c in [ADMIN, EXEC, USER] {
            let (firsts, before, after): (Vec<First<'_>>, Progress, Progress) = match stage {
                Stage::FirstFeatureUse => (
                    vec![First {
                        key: &key,
                        contact_id: Some(c),
                    }],
                    self.progress(1),
                    self.progress(1),
                ),
                Stage::FirstReport => {
                    // A report before the other steps: a first result, not yet the completion.
                    let mut after = self.progress(0);
                    if let Some(last) = steps.last() {
                        after.done.insert(last.clone(), self.now);
                    }
                    (
                        vec![First {
                            key: "report",
                            contact_id: Some(c),
                        }],
                        self.progress(0),
                        after,
                    )
                }
                _ => (
                    vec![First {
                        key: "report",
                        contact_id: Some(c),
                    }],
                    self.progress(steps.len().saturating_sub(1)),
                    self.progress(steps.len()),
                ),
            };
            out.extend(program::milestone_nudges(
                audience, &firsts, &keys, &before, &after,
            ));
        }
        out
    }

    /// A year of use that fell off a month ago: the sample behind the health plays.
    fn usage(&self) -> Vec<DayUsage> {
        let keys = self.model.key_features(&self.plan).to_vec();
        let today = self.today();
        (1..=90)
            .map(|ago| {
                let recent = ago <= 30;
                let features = keys
                    .iter()
                    .take(2)
                    .filter(|_| !recent)
                    .map(|k| (k.clone(), 4))
                    .collect();
                DayUsage {
                    day: today - Duration::days(ago),
                    logins: if recent { u64::from(ago % 7 == 0) } else { 6 },
                    reports: u64::from(!recent),
                    features,
                    active_contacts: [ADMIN.to_string()].into(),
                }
            })
            .collect()
    }

    fn nps(&self) -> NpsResponse {
        let comment = if self.ja() {
            "レポートの読み込みが遅く、チームが使わなくなりました。"
        } else {
            "Reports load slowly and the team stopped using them."
        };
        NpsResponse {
            score: 3,
            at: self.now - Duration::days(5),
            comment: Some(comment.into()),
        }
    }

    fn score_at(
        &self,
        profile: &AccountProfile,
        usage: &[DayUsage],
        nps: &NpsResponse,
        now: DateTime<Utc>,
    ) -> nudge_shared::health::HealthScore {
        let steps: BTreeSet<String> = self.steps().into_iter().collect();
        let ticket = Ticket {
            id: "T-1042".into(),
            severity: Severity::High,
            opened_at: self.now - Duration::days(4),
        };
        score(
            &self.model,
            &HealthInputs {
                profile,
                first_seen: self.now - Duration::days(400),
                usage,
                onboarding_steps_done: &steps,
                first_report: true,
                open_tickets: std::slice::from_ref(&ticket),
                recent_tickets: std::slice::from_ref(&ticket),
                nps: std::slice::from_ref(nps),
                admin_changed_at: None,
                now,
            },
        )
    }

    /// A real score of the sample (and of the day before), then the playbook's band change.
    fn band_play(&self, profile: &AccountProfile, red: bool) -> Vec<Nudge> {
        let mut profile = profile.clone();
        profile.contract_start = self.today() - Duration::days(400);
        let usage = self.usage();
        let nps = self.nps();
        let before = self.score_at(&profile, &usage, &nps, self.now - Duration::days(1));
        let mut today = self.score_at(&profile, &usage, &nps, self.now);
        let (from, to) = if red {
            (Band::Yellow, Band::Red)
        } else {
            (Band::Green, Band::Yellow)
        };
        // The message is about the band change; should a future default model score the sample
        // otherwise, the preview still shows the change's wording.
        today.band = to;
        let change = diff(&before, &today);
        let facts = Facts {
            account_id: ACCOUNT,
            profile: &profile,
            score: &today,
            change: Some(&change),
            latest_nps: Some(&nps),
            usage: &usage,
            now: self.now,
        };
        let band = BandChange {
            from: Some(from),
            to,
            day: today.day,
        };
        actions::band_nudges(&self.model, &band, &facts)
    }

    fn upsell(&self, profile: &AccountProfile) -> Vec<Nudge> {
        let usage = self.usage();
        let nps = self.nps();
        let score = self.score_at(profile, &usage, &nps, self.now);
        let facts = Facts {
            account_id: ACCOUNT,
            profile,
            score: &score,
            change: None,
            latest_nps: None,
            usage: &usage,
            now: self.now,
        };
        let members = self.members();
        actions::upsell_nudges(
            &self.model,
            &facts,
            profile.renewal_date,
            Some(ADMIN),
            &members,
        )
    }

    /// A follow-up of a gentle risk email nobody opened, on a high-touch account: the CSM's
    /// task, naming the original's real subject.
    async fn follow_up(&self, deps: &Deps, now: DateTime<Utc>) -> Result<Vec<Nudge>> {
        let sent_at = now - Duration::days(3);
        let original = Nudge::new(
            format!("hp/turns_yellow/{}/risk_nudge", self.today() - Duration::days(3)),
            ACCOUNT,
            None,
            NudgeKind::RiskNudge,
            sent_at,
            actions::FUNCTION,
            sent_at,
        )
        .with_stage(Stage::TurnsYellow)
        .with_vars(json!({ "band": "yellow", "feature": self.model.key_features(&self.plan).first(), "from_csm": false }));
        let subject = preview(deps, registry::render_vars, &original, sent_at)
            .await?
            .rendered
            .subject;
        let clock = (self.tz, &deps.config.business_hours);
        Ok(
            follow_up_for(&original, self.tier, &subject, sent_at, clock)
                .into_iter()
                .collect(),
        )
    }

    /// The nudge for the requested role (or the first), or a usage error naming who gets it.
    fn choose(
        &self,
        req: &PreviewRequest,
        stage: Option<Stage>,
        candidates: Vec<Nudge>,
    ) -> Result<(Option<Role>, Nudge), Usage> {
        let what = match stage {
            Some(s) => format!("{} ({s})", req.kind),
            None => req.kind.to_string(),
        };
        if req.kind.audience() == Audience::Csm {
            if req.role.is_some() {
                return Err(Usage(format!(
                    "{what} goes to the CSM: --role does not apply"
                )));
            }
            return candidates
                .into_iter()
                .next()
                .map(|n| (None, n))
                .ok_or_else(|| Usage(format!("{what}: the planner makes no such message")));
        }
        let mut roles: Vec<(Option<Role>, Nudge)> = candidates
            .into_iter()
            .map(|n| (self.role_of(n.contact_id.as_deref()), n))
            .collect();
        let want = req.role.or_else(|| roles.first().and_then(|(r, _)| *r));
        let goes_to = || {
            let mut names: Vec<&str> = roles
                .iter()
                .filter_map(|(r, _)| r.map(|r| r.as_str()))
                .collect();
            names.dedup();
            names.join(", ")
        };
        match roles.iter().position(|(r, _)| *r == want) {
            Some(i) => Ok(roles.swap_remove(i)),
            None => Err(Usage(format!(
                "{what} goes to: {}; not to a {}",
                goes_to(),
                want.map(|r| r.as_str()).unwrap_or("recipient")
            ))),
        }
    }
}

/// `hour`:00 local on `day` (an hour that exists in every zone used here).
fn local(tz: Tz, day: Option<NaiveDate>, hour: u32) -> DateTime<Utc> {
    let day = day.unwrap_or_default();
    let t = day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default());
    tz.from_local_datetime(&t)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| t.and_utc())
}

/// The preview's channels: it renders, it never sends.
struct NeverSends;

#[async_trait]
impl Mailer for NeverSends {
    async fn send_email(&self, _: &OutgoingEmail) -> Result<String, SendError> {
        Err(SendError::Rejected("a preview never sends".into()))
    }
}

#[async_trait]
impl Notifier for NeverSends {
    async fn notify(&self, _: &Notification) -> Result<String, SendError> {
        Err(SendError::Rejected("a preview never sends".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: NudgeKind, stage: Option<Stage>, locale: Locale) -> PreviewRequest {
        PreviewRequest {
            kind,
            stage: stage.map(|s| s.as_str().to_string()),
            locale,
            role: None,
            plan: "standard".into(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn usage_of(e: anyhow::Error) -> String {
        e.downcast_ref::<Usage>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| panic!("not a usage error: {e:#}"))
    }

    #[tokio::test]
    async fn every_kind_and_stage_renders_in_japanese_and_english() {
        for &kind in NudgeKind::ALL {
            for &stage in stages(kind) {
                for locale in [Locale::Ja, Locale::En] {
                    let what = format!("{kind} {stage:?} {locale}");
                    let out = render(&req(kind, stage, locale), no_env)
                        .await
                        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
                    let p = &out.preview;
                    assert_eq!(
                        (out.kind, out.stage, p.locale),
                        (kind, stage, locale),
                        "{what}"
                    );
                    assert!(!p.rendered.subject.is_empty(), "{what}: no subject");
                    assert!(p.rendered.text.len() > 40, "{what}: {}", p.rendered.text);
                    assert!(p.to.is_some(), "{what}: no recipient");
                    // The sample's names, in the recipient's language.
                    let name = if locale == Locale::Ja {
                        "アクメ物流"
                    } else {
                        "Acme Logistics"
                    };
                    assert!(
                        p.rendered.subject.contains(name)
                            || p.rendered.text.contains(name)
                            || p.rendered.text.contains(if locale == Locale::Ja {
                                "様"
                            } else {
                                "Hi "
                            }),
                        "{what}: {}",
                        p.rendered.text
                    );
                    if locale == Locale::Ja {
                        assert!(
                            !p.rendered.subject.is_ascii(),
                            "{what}: {}",
                            p.rendered.subject
                        );
                    } else {
                        assert!(!p.rendered.text.contains("様"), "{what}");
                    }
                    match kind.audience() {
                        Audience::Customer => {
                            let html = out.html().unwrap_or_default();
                            assert!(
                                html.contains(&format!("lang=\"{locale}\"")),
                                "{what}: {html}"
                            );
                            assert!(html.contains("unsubscribe?token="), "{what}");
                        }
                        Audience::Csm => assert!(out.html().is_err(), "{what}"),
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn the_html_body_escapes_what_the_deployment_and_data_put_in_it() {
        let env = |k: &str| (k == "NUDGE_COMPANY_NAME").then(|| "<b>\"Acme\" & Co</b>".to_string());
        let out = render(&req(NudgeKind::DeadlineReminder, None, Locale::En), env)
            .await
            .expect("render");
        let html = out.html().expect("html");
        assert!(
            html.contains("&lt;b&gt;&quot;Acme&quot; &amp; Co&lt;&#x2f;b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>\"Acme"), "{html}");
        // The plain text is not HTML: it keeps the name as it is.
        assert!(out.preview.rendered.text.contains("<b>\"Acme\" & Co</b>"));
    }

    #[tokio::test]
    async fn the_role_chooses_the_planners_message_and_the_plan_its_offer() {
        let mut r = req(NudgeKind::UpsellOffer, None, Locale::En);
        r.plan = "premium".into();
        r.role = Some(Role::Executive);
        let out = render(&r, no_env).await.expect("render");
        assert_eq!(out.preview.to.as_deref(), Some("ben.carter@acme.example"));
        assert!(
            out.preview.rendered.text.contains("coaching"),
            "{}",
            out.text()
        );
        r.plan = "standard".into();
        let out = render(&r, no_env).await.expect("render");
        assert!(
            !out.preview.rendered.text.contains("coaching"),
            "{}",
            out.text()
        );
    }

    #[tokio::test]
    async fn an_unknown_stage_or_a_role_the_kind_never_reaches_is_a_usage_error() {
        let mut r = req(NudgeKind::Milestone, None, Locale::En);
        r.stage = Some("bogus".into());
        let e = usage_of(render(&r, no_env).await.unwrap_err());
        assert_eq!(
            e,
            "unknown stage \"bogus\" for milestone; valid stages: week_one, first_feature_use, \
             first_report, onboarding_complete"
        );
        let mut r = req(NudgeKind::UpsellOffer, None, Locale::En);
        r.role = Some(Role::User);
        let e = usage_of(render(&r, no_env).await.unwrap_err());
        assert_eq!(
            e,
            "upsell_offer (renewal_upsell) goes to: admin, executive; not to a user"
        );
        let mut r = req(NudgeKind::HealthAlert, None, Locale::En);
        r.role = Some(Role::Admin);
        let e = usage_of(render(&r, no_env).await.unwrap_err());
        assert!(e.contains("goes to the CSM"), "{e}");
        let mut r = req(NudgeKind::AutomationPaused, None, Locale::En);
        r.stage = Some("final".into());
        let e = usage_of(render(&r, no_env).await.unwrap_err());
        assert_eq!(e, "automation_paused has no stages (got --stage final)");
    }

    #[tokio::test]
    async fn a_deadline_stage_says_the_time_left_as_the_recipient_reads_it() {
        let out = render(
            &req(NudgeKind::DeadlineReminder, Some(Stage::Final), Locale::Ja),
            no_env,
        )
        .await
        .expect("render");
        assert!(
            out.preview.rendered.subject.contains("あと2時間"),
            "{}",
            out.text()
        );
        let out = render(
            &req(
                NudgeKind::DeadlineReminder,
                Some(Stage::TMinus3d),
                Locale::En,
            ),
            no_env,
        )
        .await
        .expect("render");
        assert!(
            out.preview.rendered.subject.contains("in 3 days"),
            "{}",
            out.text()
        );
    }
}
