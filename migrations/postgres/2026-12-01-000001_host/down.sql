DROP INDEX notifications_user_id;
DROP TABLE idempotency_keys;
DROP TABLE user_orgs;
DROP TABLE notification_templates;
