//! In-app notifications: stored for each user (whether or not they are connected), pushed
//! live as a `notification` event unless the user's preferences hold it back, listed, read
//! and dismissed. Reading on one device tells the user's other sessions (`notification_read`).

use std::collections::{HashMap, HashSet};

use super::templates::{self, check_category, check_text, priority};
use super::{Caller, ServiceError, bad, check_json_size, page_limit, publish};
use crate::context::AppContext;
use crate::envelope::{Audience, Lane};
use crate::metrics;
use crate::protocol::rest::{
    NotificationPage, NotificationsQuery, Notified, NotifyRequest, Preferences,
};
use crate::protocol::{Notification, Priority, ServerFrame, Ts};
use crate::store::models::{NotificationRow, PrefsRow, naive};

/// Most users one server API call may notify.
pub const MAX_RECIPIENTS: usize = 1000;
/// Default and largest page of the list.
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 200;
/// Most muted categories a user may keep.
pub const MAX_MUTED: usize = 100;

/// What a user's preferences say about a notification.
fn pushed(prefs: Option<&Preferences>, category: &str, p: Priority) -> bool {
    let Some(prefs) = prefs else { return true };
    if prefs.muted_categories.iter().any(|c| c == category) {
        return false;
    }
    // `urgent` goes through whatever the minimum; only muting its category holds it back.
    let min = Priority::parse(&prefs.min_priority).unwrap_or(Priority::Low);
    p == Priority::Urgent || p >= min
}

fn prefs_of(row: PrefsRow) -> Preferences {
    Preferences {
        muted_categories: serde_json::from_str(&row.muted_categories).unwrap_or_default(),
        min_priority: row.min_priority,
    }
}

/// Stores a notification for each of `req.user_ids` (users who never connected included) and
/// pushes it to those whose preferences allow. The host backend's `POST /notifications`.
pub async fn notify(app: &AppContext, req: NotifyRequest) -> Result<Vec<Notified>, ServiceError> {
    let mut users: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for u in req.user_ids {
        super::check_user_id(&u)?;
        if seen.insert(u.clone()) {
            users.push(u);
        }
    }
    if users.is_empty() {
        return Err(bad("user_ids is empty"));
    }
    if users.len() > MAX_RECIPIENTS {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_RECIPIENTS} user_ids per notification"
        )));
    }
    let (category, prio, title, body) = match &req.template {
        Some(key) => {
            let t = templates::get(app, key).await?;
            (
                req.category.unwrap_or(t.category),
                req.priority.or(Some(t.priority)),
                templates::render(&t.title, &req.vars)?,
                templates::render(&t.body, &req.vars)?,
            )
        }
        None => (
            req.category.unwrap_or_else(|| "general".into()),
            req.priority,
            req.title
                .ok_or_else(|| bad("title is required (or give a template)"))?,
            req.body.unwrap_or_default(),
        ),
    };
    check_category(&category)?;
    let prio = priority(prio.as_deref())?;
    check_text(&title, &body)?;
    let data = req
        .data
        .map(|d| check_json_size("data", serde_json::Value::Object(d)))
        .transpose()?;
    let now = naive(Ts::now());
    let rows: Vec<NotificationRow> = users
        .iter()
        .map(|u| NotificationRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: u.clone(),
            category: category.clone(),
            priority: prio.as_str().into(),
            title: title.clone(),
            body: body.clone(),
            data: data.clone(),
            created_at: now,
            read_at: None,
            dismissed: false,
        })
        .collect();
    let online = if super::webhooks::wants(app, "notification.created") {
        Some(app.relay().online(&users).await)
    } else {
        None
    };
    app.store()
        .insert_notifications(rows.clone(), online)
        .await?;
    // Stored: from here on nothing is the caller's failure. Preferences that cannot be read
    // count as none (push), rather than hiding a stored notification.
    let prefs: HashMap<String, Preferences> = match app.store().prefs(&users).await {
        Ok(rows) => rows
            .into_iter()
            .map(|r| (r.user_id.clone(), prefs_of(r)))
            .collect(),
        Err(e) => {
            log::warn!("notifications: cannot read preferences: {e}");
            HashMap::new()
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let user_id = row.user_id.clone();
        let notification: Notification = row.into();
        let push = pushed(prefs.get(&user_id), &category, prio);
        if push {
            metrics::notification("pushed");
            publish(
                app,
                Audience::users(vec![user_id.clone()]),
                Lane::Durable,
                &ServerFrame::Notification {
                    notification: notification.clone(),
                },
            )
            .await;
        } else {
            metrics::notification("muted");
        }
        out.push(Notified {
            user_id,
            id: notification.id,
            pushed: push,
        });
    }
    log::info!(
        "notification {category}/{} stored for {} user(s)",
        prio.as_str(),
        out.len()
    );
    Ok(out)
}

/// A page of the caller's notifications, newest first.
pub async fn list(
    app: &AppContext,
    caller: &Caller,
    q: NotificationsQuery,
) -> Result<NotificationPage, ServiceError> {
    let limit = page_limit(q.limit, PAGE_DEFAULT, PAGE_MAX)?;
    let rows = app
        .store()
        .notifications(
            &caller.user_id,
            q.before,
            q.unread.unwrap_or(false),
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let mut notifications: Vec<Notification> = rows.into_iter().map(Into::into).collect();
    notifications.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more {
        notifications.last().map(|n| n.id.clone())
    } else {
        None
    };
    Ok(NotificationPage {
        notifications,
        next,
    })
}

/// How many of the caller's notifications are unread.
pub async fn unread_count(app: &AppContext, caller: &Caller) -> Result<i64, ServiceError> {
    Ok(app.store().notifications_unread(&caller.user_id).await?)
}

async fn tell_other_sessions(app: &AppContext, caller: &Caller, frame: ServerFrame) {
    publish(
        app,
        Audience::users_except(vec![caller.user_id.clone()], caller.session_id.clone()),
        Lane::Durable,
        &frame,
    )
    .await;
}

/// Marks one of the caller's notifications read (`not_found` if it is not theirs).
pub async fn read(app: &AppContext, caller: &Caller, id: &str) -> Result<(), ServiceError> {
    let now = naive(Ts::now());
    match app
        .store()
        .read_notification(caller.user_id.clone(), id.to_string(), now)
        .await?
    {
        None => Err(ServiceError::NotFound("no such notification".into())),
        Some(false) => Ok(()),
        Some(true) => {
            let frame = ServerFrame::NotificationRead {
                ids: Some(vec![id.to_string()]),
                all: None,
            };
            tell_other_sessions(app, caller, frame).await;
            Ok(())
        }
    }
}

/// Marks all the caller's notifications read.
pub async fn read_all(app: &AppContext, caller: &Caller) -> Result<(), ServiceError> {
    let now = naive(Ts::now());
    let changed = app
        .store()
        .read_all_notifications(caller.user_id.clone(), now)
        .await?;
    if changed > 0 {
        let frame = ServerFrame::NotificationRead {
            ids: None,
            all: Some(true),
        };
        tell_other_sessions(app, caller, frame).await;
    }
    Ok(())
}

/// Dismisses one of the caller's notifications (`not_found` if it is not theirs).
pub async fn dismiss(app: &AppContext, caller: &Caller, id: &str) -> Result<(), ServiceError> {
    if !app
        .store()
        .dismiss_notification(caller.user_id.clone(), id.to_string())
        .await?
    {
        return Err(ServiceError::NotFound("no such notification".into()));
    }
    Ok(())
}

/// Dismisses all the caller's notifications.
pub async fn dismiss_all(app: &AppContext, caller: &Caller) -> Result<(), ServiceError> {
    app.store()
        .dismiss_all_notifications(caller.user_id.clone())
        .await?;
    Ok(())
}

/// The caller's preferences (the defaults if they never set any).
pub async fn preferences(app: &AppContext, caller: &Caller) -> Result<Preferences, ServiceError> {
    let rows = app
        .store()
        .prefs(std::slice::from_ref(&caller.user_id))
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(prefs_of)
        .unwrap_or(Preferences {
            muted_categories: Vec::new(),
            min_priority: Priority::Low.as_str().into(),
        }))
}

/// Replaces the caller's preferences.
pub async fn set_preferences(
    app: &AppContext,
    caller: &Caller,
    p: Preferences,
) -> Result<Preferences, ServiceError> {
    if Priority::parse(&p.min_priority).is_none() {
        return Err(bad("min_priority must be one of low, normal, high, urgent"));
    }
    if p.muted_categories.len() > MAX_MUTED {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_MUTED} muted_categories"
        )));
    }
    for c in &p.muted_categories {
        check_category(c)?;
    }
    let row = PrefsRow {
        user_id: caller.user_id.clone(),
        muted_categories: serde_json::to_string(&p.muted_categories).unwrap_or_default(),
        min_priority: p.min_priority.clone(),
    };
    app.store().put_prefs(row).await?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_matrix() {
        let prefs = Preferences {
            muted_categories: vec!["promo".into()],
            min_priority: "high".into(),
        };
        let p = Some(&prefs);
        assert!(
            pushed(None, "promo", Priority::Low),
            "no preferences: everything"
        );
        assert!(!pushed(p, "promo", Priority::Urgent), "muted beats urgent");
        assert!(!pushed(p, "job", Priority::Normal), "below the minimum");
        assert!(pushed(p, "job", Priority::High));
        assert!(pushed(p, "job", Priority::Urgent));
        let urgent_only = Preferences {
            muted_categories: vec![],
            min_priority: "urgent".into(),
        };
        assert!(pushed(Some(&urgent_only), "job", Priority::Urgent));
        assert!(!pushed(Some(&urgent_only), "job", Priority::High));
    }
}
