-- Schema of the MySQL / MariaDB store (src/store/mysql.rs applies it at open).
-- The seeds' tables and names, with what they lacked: primary keys on the link tables,
-- foreign keys, an ordered id on offline messages (arrival order), utf8mb4 everywhere
-- (emoji), MEDIUMTEXT messages (the seeds cut them at 500 latin1 chars), and a password
-- column wide enough for an argon2id PHC string. Names compare with utf8mb4_bin so that,
-- as in SQLite, "Alice" and "alice" are different users.
-- Idempotent: safe on every start. Statements are separated by ";" at line end.

CREATE TABLE IF NOT EXISTS `user` (
    `id`       INT NOT NULL AUTO_INCREMENT,
    `name`     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `password` VARCHAR(255) NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `name` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `friend` (
    `userid`   INT NOT NULL,
    `friendid` INT NOT NULL,
    PRIMARY KEY (`userid`, `friendid`),
    KEY `friendid` (`friendid`),
    CONSTRAINT `friend_user` FOREIGN KEY (`userid`) REFERENCES `user` (`id`),
    CONSTRAINT `friend_friend` FOREIGN KEY (`friendid`) REFERENCES `user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `allgroup` (
    `id`        INT NOT NULL AUTO_INCREMENT,
    `groupname` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `groupdesc` VARCHAR(1024) NOT NULL DEFAULT '',
    PRIMARY KEY (`id`),
    UNIQUE KEY `groupname` (`groupname`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `groupuser` (
    `groupid`   INT NOT NULL,
    `userid`    INT NOT NULL,
    `grouprole` ENUM('creator', 'normal') NOT NULL,
    PRIMARY KEY (`groupid`, `userid`),
    KEY `userid` (`userid`),
    CONSTRAINT `groupuser_group` FOREIGN KEY (`groupid`) REFERENCES `allgroup` (`id`),
    CONSTRAINT `groupuser_user` FOREIGN KEY (`userid`) REFERENCES `user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `offlinemessage` (
    `id`      BIGINT NOT NULL AUTO_INCREMENT,
    `userid`  INT NOT NULL,
    `message` MEDIUMTEXT NOT NULL,
    PRIMARY KEY (`id`),
    KEY `userid` (`userid`, `id`),
    CONSTRAINT `offlinemessage_user` FOREIGN KEY (`userid`) REFERENCES `user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Resume tokens (a login with one skips the password hash). Only a SHA-256 digest of each
-- token is kept, so a copy of the database gives no way in. `expires` is Unix seconds.
CREATE TABLE IF NOT EXISTS `resumetoken` (
    `digest`  BINARY(32) NOT NULL,
    `userid`  INT NOT NULL,
    `expires` BIGINT NOT NULL,
    PRIMARY KEY (`digest`),
    KEY `userid` (`userid`),
    CONSTRAINT `resumetoken_user` FOREIGN KEY (`userid`) REFERENCES `user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
