//! Does the connected Microsoft 365 account look like a person's own account rather than a
//! shared support mailbox? A hint for the card, never a block: Microsoft does not tell, so this
//! is a guess from the names `/me` returns.
//!
//! The heuristic, in order:
//! 1. The sign-in name's local part (before `@`) contains a role word (`support`, `helpdesk`,
//!    `servicedesk`, `service`, `it`, `noc`, `info`, `team`, …) → looks shared, no hint.
//! 2. It contains both the given name and the surname `/me` reports (`alex.morgan`,
//!    `morgan_alex`), or the given name's initial followed by the surname (`amorgan`) → personal.
//! 3. It has the shape `word.word`, `word_word` or `word-word` of letters only → personal
//!    (the usual `firstname.lastname` pattern).
//! 4. The display name is exactly "given name + surname" → personal.
//!
//! Anything else gets no hint. False positives cost one dismissible line on the card; false
//! negatives cost nothing new, so the rules lean towards staying quiet for role-like names.
//! This module is pure: no I/O.

/// Local-part words that mark a shared or role mailbox.
const ROLE_WORDS: &[&str] = &[
    "support",
    "helpdesk",
    "help",
    "servicedesk",
    "service",
    "desk",
    "it",
    "itsupport",
    "admin",
    "info",
    "team",
    "tickets",
    "ticket",
    "noc",
    "ops",
    "office",
    "contact",
    "hello",
    "care",
    "techsupport",
    "msp",
    "teams",
    "bridge",
    "chat",
    "noreply",
    "no-reply",
    "servicenow",
    "tech",
];

/// Role words long enough to be recognised inside a longer local part (`northwindsupport`).
const ROLE_SUBSTRINGS: &[&str] = &["support", "helpdesk", "servicedesk", "service", "tickets"];

/// A sentence for the card when the account looks personal, `None` when it looks shared.
pub fn personal_account_hint(
    sign_in_name: &str,
    display_name: &str,
    given_name: Option<&str>,
    surname: Option<&str>,
) -> Option<String> {
    let reason = personal_account_reason(sign_in_name, display_name, given_name, surname)?;
    Some(format!(
        "{sign_in_name} looks like a person's own account ({reason}). Prefer a shared support \
         mailbox such as support@ or helpdesk@: if this person leaves and the account is \
         removed, the connection breaks and clients lose the chat with you."
    ))
}

fn personal_account_reason(
    sign_in_name: &str,
    display_name: &str,
    given_name: Option<&str>,
    surname: Option<&str>,
) -> Option<&'static str> {
    let local = sign_in_name
        .split('@')
        .next()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    if local.is_empty() {
        return None;
    }
    let words: Vec<&str> = local
        .split(|c: char| !c.is_alphabetic())
        .filter(|word| !word.is_empty())
        .collect();
    let role_like = words.iter().any(|word| ROLE_WORDS.contains(word))
        || ROLE_SUBSTRINGS.iter().any(|role| local.contains(role));
    if role_like {
        return None;
    }

    let clean = |name: Option<&str>| {
        name.map(|n| n.trim().to_lowercase())
            .filter(|n| n.chars().count() >= 2)
    };
    let (given, family) = (clean(given_name), clean(surname));
    if let (Some(given), Some(family)) = (&given, &family) {
        let compact: String = local.chars().filter(|c| c.is_alphabetic()).collect();
        let initial_and_surname = given
            .chars()
            .next()
            .map(|initial| format!("{initial}{family}"));
        if (compact.contains(given.as_str()) && compact.contains(family.as_str()))
            || initial_and_surname.is_some_and(|pattern| compact == pattern)
        {
            return Some("its sign-in name is the person's first and last name");
        }
    }

    let two_words = words.len() == 2
        && local
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '.' | '_' | '-'))
        && local
            .chars()
            .filter(|c| matches!(c, '.' | '_' | '-'))
            .count()
            == 1;
    if two_words {
        return Some("its sign-in name has the firstname.lastname shape");
    }

    if let (Some(given), Some(family)) = (&given, &family)
        && display_name.trim().to_lowercase() == format!("{given} {family}")
    {
        return Some("its display name is a person's name");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_role_mailboxes_get_no_hint() {
        for upn in [
            "support@northwind-it.example",
            "helpdesk@msp.example",
            "it-support@msp.example",
            "northwindsupport@msp.example",
            "service.desk@msp.example",
            "noc@msp.example",
        ] {
            assert_eq!(
                personal_account_hint(upn, "Northwind IT Support", Some("Support"), Some("Desk")),
                None,
                "{upn}"
            );
        }
    }

    #[test]
    fn first_and_last_name_in_the_sign_in_name_is_personal() {
        let hint = personal_account_hint(
            "alex.morgan@northwind-it.example",
            "Alex Morgan",
            Some("Alex"),
            Some("Morgan"),
        )
        .unwrap();
        assert!(hint.starts_with("alex.morgan@northwind-it.example looks like a person's own account (its sign-in name is the person's first and last name)"), "{hint}");
        assert!(hint.contains("shared support mailbox"));
        assert!(
            personal_account_hint(
                "amorgan@msp.example",
                "A. Morgan",
                Some("Alex"),
                Some("Morgan")
            )
            .is_some()
        );
        assert!(
            personal_account_hint("morgan_alex@msp.example", "", Some("Alex"), Some("Morgan"))
                .is_some()
        );
    }

    #[test]
    fn firstname_lastname_shape_is_personal_without_profile_names() {
        let hint = personal_account_hint("pat.lee@contoso.example", "Pat Lee", None, None).unwrap();
        assert!(hint.contains("firstname.lastname shape"), "{hint}");
    }

    #[test]
    fn display_name_of_a_person_is_personal() {
        let hint =
            personal_account_hint("x1@msp.example", "Robin Diaz", Some("Robin"), Some("Diaz"))
                .unwrap();
        assert!(hint.contains("display name is a person's name"), "{hint}");
    }

    #[test]
    fn unclear_names_get_no_hint() {
        assert_eq!(
            personal_account_hint("frontdesk42@msp.example", "Front", None, None),
            None
        );
        assert_eq!(personal_account_hint("", "", None, None), None);
        assert_eq!(
            personal_account_hint("a.b.c@msp.example", "", None, None),
            None
        );
    }
}
