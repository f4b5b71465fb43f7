DROP TABLE notification_prefs;
DROP TABLE notifications;
DROP TABLE users;
DROP TABLE messages;
DROP TABLE members;
DROP TABLE threads;
