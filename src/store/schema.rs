//! Table definitions that both backends compile against. Column types are the portable
//! subset (Text, BigInt, Bool, Timestamp), so one set of queries serves Postgres and SQLite.
//! Written by hand; keep in step with migrations/postgres and migrations/sqlite.

diesel::table! {
    threads (id) {
        id -> Text,
        kind -> Text,
        title -> Nullable<Text>,
        external_ref -> Nullable<Text>,
        direct_key -> Nullable<Text>,
        last_seq -> BigInt,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    members (thread_id, user_id) {
        thread_id -> Text,
        user_id -> Text,
        read_seq -> BigInt,
        delivered_seq -> BigInt,
        joined_at -> Timestamp,
        read_at -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        thread_id -> Text,
        seq -> BigInt,
        sender_id -> Text,
        kind -> Text,
        body -> Text,
        metadata -> Nullable<Text>,
        reply_to -> Nullable<Text>,
        client_id -> Nullable<Text>,
        created_at -> Timestamp,
        edited_at -> Nullable<Timestamp>,
        deleted -> Bool,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        name -> Nullable<Text>,
        last_seen -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        user_id -> Text,
        category -> Text,
        priority -> Text,
        title -> Text,
        body -> Text,
        data -> Nullable<Text>,
        created_at -> Timestamp,
        read_at -> Nullable<Timestamp>,
        dismissed -> Bool,
    }
}

diesel::table! {
    notification_prefs (user_id) {
        user_id -> Text,
        muted_categories -> Text,
        min_priority -> Text,
    }
}

diesel::table! {
    notification_templates (key) {
        key -> Text,
        category -> Text,
        priority -> Text,
        title -> Text,
        body -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    user_orgs (user_id, org) {
        user_id -> Text,
        org -> Text,
    }
}

diesel::table! {
    idempotency_keys (key) {
        key -> Text,
        fingerprint -> Text,
        status -> Integer,
        body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_outbox (id) {
        id -> Text,
        kind -> Text,
        body -> Text,
        thread_id -> Nullable<Text>,
        seq -> Nullable<BigInt>,
        attempts -> Integer,
        next_at -> Timestamp,
        leased_until -> Nullable<Timestamp>,
        leased_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(members -> threads (thread_id));
diesel::joinable!(messages -> threads (thread_id));
diesel::allow_tables_to_appear_in_same_query!(threads, members, messages, users);
diesel::allow_tables_to_appear_in_same_query!(user_orgs, members);
