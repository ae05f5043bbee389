//! What of a stored event is about the person it names, and its removal (`nudge erase-contact`).
//!
//! A raw event (`EVT#`) keeps the event's wire shape. Erasing a contact removes the properties
//! that identify or quote them and keeps everything the counts and replays read: type, ids,
//! times, scores, roles, zones. Pure: the store adapters apply it to the bodies they hold.

use serde_json::Value;

use super::EventType;

/// The properties of an event type that are a person's own data: contact details, and free
/// text they wrote or that names them (a deadline's title, whose link may carry their name).
/// `csm` on `account_upserted` is the vendor's manager, not the customer's contact.
pub fn personal_properties(event_type: EventType) -> &'static [&'static str] {
    match event_type {
        EventType::ContactUpserted => &["email", "name", "phone"],
        EventType::NpsResponse => &["comment"],
        EventType::DeadlineSet => &["title", "link"],
        _ => &[],
    }
}

/// Removes the personal properties from an event in its wire shape; true when something was
/// removed (false again for an event already erased, so a repeated erasure counts nothing).
/// A body that is not an event of a known type is left as it is.
///
/// Without them a `contact_upserted` or `deadline_set` no longer parses as an event (their
/// required text is gone), which replays skip; an `nps_response` still does, with its score.
pub fn erase_personal_properties(wire: &mut Value) -> bool {
    let Some(event_type) = wire
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<EventType>().ok())
    else {
        return false;
    };
    let Some(properties) = wire.get_mut("properties").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut removed = false;
    for key in personal_properties(event_type) {
        removed |= properties.remove(*key).is_some();
    }
    removed
}

/// The comment of an `nps_response` in its wire shape, if it has one.
pub fn nps_comment(wire: &Value) -> Option<&str> {
    (wire.get("type").and_then(Value::as_str) == Some(EventType::NpsResponse.as_str()))
        .then(|| wire.pointer("/properties/comment").and_then(Value::as_str))
        .flatten()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::events::parse_event;

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_contact_upserted_loses_address_name_and_phone_and_keeps_ids_role_and_zone() {
        let mut wire = json!({
            "event_id": "e1", "account_id": "acme", "contact_id": "u-7",
            "type": "contact_upserted", "occurred_at": "2026-11-19T09:00:00+09:00",
            "properties": {"email": "hanako@acme.example", "name": "Hanako Yamada",
                "phone": "+81312345678", "role": "admin", "timezone": "Asia/Tokyo"}
        });
        assert!(erase_personal_properties(&mut wire));
        assert_eq!(
            wire,
            json!({
                "event_id": "e1", "account_id": "acme", "contact_id": "u-7",
                "type": "contact_upserted", "occurred_at": "2026-11-19T09:00:00+09:00",
                "properties": {"role": "admin", "timezone": "Asia/Tokyo"}
            })
        );
        assert!(
            !erase_personal_properties(&mut wire),
            "nothing left to erase"
        );
    }

    #[test]
    fn an_nps_response_loses_its_comment_and_still_parses_with_its_score() {
        let mut wire = json!({
            "event_id": "e2", "account_id": "acme", "contact_id": "u-7",
            "type": "nps_response", "occurred_at": "2026-11-19T09:00:00Z",
            "properties": {"score": 3, "comment": "Hanako finds exports slow"}
        });
        assert_eq!(nps_comment(&wire), Some("Hanako finds exports slow"));
        assert!(erase_personal_properties(&mut wire));
        assert_eq!(nps_comment(&wire), None);
        let event = parse_event(&wire, now()).expect("still an event");
        assert_eq!(
            event.payload,
            crate::events::EventPayload::NpsResponse {
                score: 3,
                comment: None
            }
        );
    }

    #[test]
    fn a_deadline_set_loses_title_and_link_and_keeps_id_and_due_time() {
        let mut wire = json!({
            "event_id": "e3", "account_id": "acme", "contact_id": "u-7",
            "type": "deadline_set", "occurred_at": "2026-11-19T09:00:00Z",
            "properties": {"deadline_id": "d1", "due_at": "2026-11-27T17:00:00+09:00",
                "title": "Hanako's renewal", "link": "https://app.example/u/hanako", "kind": "renewal"}
        });
        assert!(erase_personal_properties(&mut wire));
        assert_eq!(
            wire["properties"],
            json!({"deadline_id": "d1", "due_at": "2026-11-27T17:00:00+09:00", "kind": "renewal"})
        );
    }

    #[test]
    fn events_without_personal_properties_and_unreadable_bodies_are_left_alone() {
        let mut login = json!({
            "event_id": "e4", "account_id": "acme", "contact_id": "u-7",
            "type": "login", "occurred_at": "2026-11-19T09:00:00Z", "properties": {}
        });
        let before = login.clone();
        assert!(!erase_personal_properties(&mut login));
        assert_eq!(login, before);
        let mut unknown = json!({"type": "mystery", "properties": {"email": "a@b.example"}});
        assert!(!erase_personal_properties(&mut unknown));
        assert!(!erase_personal_properties(&mut json!("not an object")));
        assert_eq!(nps_comment(&json!({"type": "login"})), None);
    }
}
