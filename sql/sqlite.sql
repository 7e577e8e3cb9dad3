-- Schema of the embedded SQLite store (src/store/sqlite.rs applies it at open).
-- Same tables and names as the seeds' MySQL schema, plus the keys the seeds lacked:
-- primary keys on the link tables, foreign keys to user/allgroup, and an ordered id on
-- offline messages so they come back in arrival order. Idempotent: safe on every start.

CREATE TABLE IF NOT EXISTS user (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,   -- AUTOINCREMENT: ids are never reused
    name     TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL                         -- argon2id PHC string, at most 255 chars
        CHECK (length(password) <= 255)
);

CREATE TABLE IF NOT EXISTS friend (
    userid   INTEGER NOT NULL REFERENCES user(id),
    friendid INTEGER NOT NULL REFERENCES user(id),
    PRIMARY KEY (userid, friendid)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS allgroup (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    groupname TEXT NOT NULL UNIQUE,
    groupdesc TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS groupuser (
    groupid   INTEGER NOT NULL REFERENCES allgroup(id),
    userid    INTEGER NOT NULL REFERENCES user(id),
    grouprole TEXT NOT NULL CHECK (grouprole IN ('creator', 'normal')),
    PRIMARY KEY (groupid, userid)
) WITHOUT ROWID;

-- groups_of looks memberships up by user.
CREATE INDEX IF NOT EXISTS groupuser_userid ON groupuser(userid);

CREATE TABLE IF NOT EXISTS offlinemessage (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,     -- arrival order
    userid  INTEGER NOT NULL REFERENCES user(id),
    message TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS offlinemessage_userid ON offlinemessage(userid, id);

-- Resume tokens (a login with one skips the password hash). Only a SHA-256 digest of each
-- token is kept, so a copy of the database gives no way in.
CREATE TABLE IF NOT EXISTS resumetoken (
    digest  BLOB PRIMARY KEY,
    userid  INTEGER NOT NULL REFERENCES user(id),
    expires INTEGER NOT NULL                       -- Unix seconds
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS resumetoken_userid ON resumetoken(userid);
