//! What both adapters' `erase_contact` decide alike: which stored texts are the contact's own
//! words, and removing them where another item quotes them. Pure.

use std::collections::BTreeSet;

use serde_json::Value;

use super::health::NPS_COMMENT_CHARS;

/// Every form in which a comment may be stored: whole (the raw event) and cut to what the
/// satisfaction item keeps, which is what a CSM alert's variables quote.
pub fn stored_forms<'a>(comments: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in comments {
        out.insert(c.to_string());
        out.insert(c.chars().take(NPS_COMMENT_CHARS).collect());
    }
    out.retain(|c| !c.is_empty());
    out
}

/// Replaces every string in `vars` (at any depth) that is one of `texts` with null; true when
/// one was. A null renders as "no comment", as for an answer without one.
pub fn forget_quotes(vars: &mut Value, texts: &BTreeSet<String>) -> bool {
    match vars {
        Value::String(s) if texts.contains(s.as_str()) => {
            *vars = Value::Null;
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |hit, v| forget_quotes(v, texts) | hit),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |hit, v| forget_quotes(v, texts) | hit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_long_comment_is_known_whole_and_as_the_satisfaction_item_keeps_it() {
        let long = "x".repeat(NPS_COMMENT_CHARS + 5);
        let forms = stored_forms([long.as_str(), ""]);
        assert_eq!(forms.len(), 2);
        assert!(forms.contains(&long));
        assert!(forms.contains(&"x".repeat(NPS_COMMENT_CHARS)));
    }

    #[test]
    fn a_quoted_comment_becomes_null_wherever_it_sits_and_other_text_stays() {
        let texts = stored_forms(["Exports are slow"]);
        let mut vars = json!({
            "nps": 3, "nps_comment": "Exports are slow", "trigger": "turns_red",
            "drivers": [{"factor": "nps", "note": "Exports are slow"}],
        });
        assert!(forget_quotes(&mut vars, &texts));
        assert_eq!(
            vars,
            json!({
                "nps": 3, "nps_comment": null, "trigger": "turns_red",
                "drivers": [{"factor": "nps", "note": null}],
            })
        );
        assert!(!forget_quotes(&mut vars, &texts), "already forgotten");
    }
}
