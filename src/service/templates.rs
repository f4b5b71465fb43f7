//! Notification templates: `{{name}}` placeholders in a title and body, stored per key by the
//! host and rendered with the variables of each notification. The rendered text is what is
//! stored and pushed.

use std::collections::BTreeMap;

use super::{ServiceError, bad};
use crate::context::AppContext;
use crate::protocol::rest::{Template, TemplateBody};
use crate::protocol::{Priority, Ts};
use crate::store::models::{TemplateRow, naive, ts};

/// Longest template key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest title, in chars (templates and rendered notifications alike).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest body, in chars.
pub const MAX_BODY_CHARS: usize = 4000;

/// Longest category, in chars.
pub const MAX_CATEGORY_CHARS: usize = 64;

/// A category, checked: 1 to 64 chars of letters, digits, `_`, `-`, `.`.
pub fn check_category(c: &str) -> Result<(), ServiceError> {
    let ok = !c.is_empty()
        && c.chars().count() <= MAX_CATEGORY_CHARS
        && c.chars()
            .all(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '-' | '.' | ':'));
    if !ok {
        return Err(bad(
            "category must be 1 to 64 letters, digits, '_', '-', '.' or ':'",
        ));
    }
    Ok(())
}

/// A priority, checked; `None` is `normal`.
pub fn priority(p: Option<&str>) -> Result<Priority, ServiceError> {
    match p {
        None => Ok(Priority::Normal),
        Some(s) => Priority::parse(s)
            .ok_or_else(|| bad("priority must be one of low, normal, high, urgent")),
    }
}

/// Title and body lengths, checked.
pub fn check_text(title: &str, body: &str) -> Result<(), ServiceError> {
    if title.trim().is_empty() {
        return Err(bad("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ServiceError::TooLarge(format!(
            "title is longer than {MAX_TITLE_CHARS} chars"
        )));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ServiceError::TooLarge(format!(
            "body is longer than {MAX_BODY_CHARS} chars"
        )));
    }
    Ok(())
}

fn to_wire(r: TemplateRow) -> Template {
    Template {
        key: r.key,
        category: r.category,
        priority: r.priority,
        title: r.title,
        body: r.body,
        updated_at: ts(r.updated_at),
    }
}

/// Creates or replaces the template `key`.
pub async fn put(app: &AppContext, key: &str, t: TemplateBody) -> Result<Template, ServiceError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(bad(format!(
            "template key must be 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    let category = t.category.unwrap_or_else(|| "general".into());
    check_category(&category)?;
    let priority = priority(t.priority.as_deref())?;
    check_text(&t.title, &t.body)?;
    // A placeholder that is never closed would be stored and fail every render: refuse it now.
    for text in [&t.title, &t.body] {
        placeholders(text)?;
    }
    let row = TemplateRow {
        key: key.to_string(),
        category,
        priority: priority.as_str().into(),
        title: t.title,
        body: t.body,
        updated_at: naive(Ts::now()),
    };
    app.store().put_template(row.clone()).await?;
    log::info!("template {key} stored");
    Ok(to_wire(row))
}

/// Every template.
pub async fn list(app: &AppContext) -> Result<Vec<Template>, ServiceError> {
    Ok(app
        .store()
        .templates()
        .await?
        .into_iter()
        .map(to_wire)
        .collect())
}

/// Deletes a template (`not_found` if there is none).
pub async fn delete(app: &AppContext, key: &str) -> Result<(), ServiceError> {
    if !app.store().delete_template(key.to_string()).await? {
        return Err(ServiceError::NotFound(format!("no template {key:?}")));
    }
    Ok(())
}

/// The template `key` (`not_found` if there is none).
pub async fn get(app: &AppContext, key: &str) -> Result<TemplateRow, ServiceError> {
    app.store()
        .template(key)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no template {key:?}")))
}

/// The `{{name}}` placeholders of `text`, in order.
fn placeholders(text: &str) -> Result<Vec<&str>, ServiceError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| bad("a {{ placeholder is not closed with }}"))?;
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Renders `text`, replacing each `{{name}}` by `vars[name]` (strings as they are, other JSON
/// values as JSON). A placeholder without a variable is a `bad_request` naming it.
pub fn render(
    text: &str,
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<String, ServiceError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| bad("a {{ placeholder is not closed with }}"))?;
        let name = after[..end].trim();
        match vars.get(name) {
            Some(serde_json::Value::String(s)) => out.push_str(s),
            Some(v) => out.push_str(&v.to_string()),
            None => return Err(bad(format!("missing var {name:?} for the template"))),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_a_missing_one_is_named() {
        let mut vars = BTreeMap::new();
        vars.insert("name".to_string(), serde_json::json!("Ana"));
        vars.insert("mins".to_string(), serde_json::json!(5));
        assert_eq!(
            render("{{name}} arrives in {{ mins }} min", &vars).unwrap(),
            "Ana arrives in 5 min"
        );
        let err = render("Hi {{who}}", &vars).unwrap_err();
        assert!(err.to_string().contains("\"who\""), "{err}");
        assert!(render("Hi {{who", &vars).is_err());
    }
}
