-- Webhook subscriptions, keyed by (replica, kind, uuid) and listed by owner. Documents are kept
-- as text: their key order is part of what the API answers. Every text column sorts by byte
-- (COLLATE "C"), as the embedded store does, whatever the database's locale.
CREATE TABLE webhook_subscriptions (
    replica  text COLLATE "C" NOT NULL,
    kind     text COLLATE "C" NOT NULL,
    uuid     text COLLATE "C" NOT NULL,
    owner    text COLLATE "C" NOT NULL,
    document text COLLATE "C" NOT NULL,
    PRIMARY KEY (replica, kind, uuid)
);
CREATE INDEX webhook_subscriptions_owner ON webhook_subscriptions (replica, kind, owner, uuid);

-- Moves on whenever a replica's set of subscriptions changes, so matchers reload only then.
CREATE TABLE webhook_revisions (
    replica  text COLLATE "C" PRIMARY KEY,
    revision bigint NOT NULL
);

CREATE TABLE webhook_filter_failures (
    replica    text COLLATE "C" NOT NULL,
    kind       text COLLATE "C" NOT NULL,
    uuid       text COLLATE "C" NOT NULL,
    failures   bigint NOT NULL,
    last_error text COLLATE "C" NOT NULL,
    last_ms    bigint NOT NULL,
    PRIMARY KEY (replica, kind, uuid)
);

-- The webhook outbox: one row per (subscription, event), claimed before each attempt.
CREATE TABLE webhook_deliveries (
    id               text COLLATE "C" PRIMARY KEY,
    subscription     text COLLATE "C" NOT NULL,
    replica          text COLLATE "C" NOT NULL,
    kind             text COLLATE "C" NOT NULL,
    owner            text COLLATE "C" NOT NULL,
    event_key        text COLLATE "C" NOT NULL,
    event_type       text COLLATE "C" NOT NULL,
    bundle_uuid      text COLLATE "C" NOT NULL,
    bundle_version   text COLLATE "C",
    payload          text COLLATE "C" NOT NULL,
    state            text COLLATE "C" NOT NULL,
    attempts         integer NOT NULL,
    round_start      integer NOT NULL,
    round_started_ms bigint NOT NULL,
    created_ms       bigint NOT NULL,
    updated_ms       bigint NOT NULL,
    last_status      integer,
    last_error       text COLLATE "C",
    claimed_until_ms bigint,
    UNIQUE (subscription, event_key)
);
CREATE INDEX webhook_deliveries_listed ON webhook_deliveries (subscription, created_ms DESC, id DESC);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_ms) WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
    subscription text COLLATE "C" NOT NULL,
    delivery     text COLLATE "C" NOT NULL,
    attempt      integer NOT NULL,
    at_ms        bigint NOT NULL,
    status       integer,
    latency_ms   bigint NOT NULL,
    error        text COLLATE "C",
    outcome      text COLLATE "C" NOT NULL,
    PRIMARY KEY (delivery, attempt)
);
CREATE INDEX webhook_attempts_listed ON webhook_attempts (subscription, at_ms DESC, delivery DESC, attempt DESC);
CREATE INDEX webhook_attempts_age ON webhook_attempts (at_ms);

CREATE TABLE collection_owners (
    owner   text COLLATE "C" NOT NULL,
    uuid    text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    PRIMARY KEY (owner, uuid, version)
);

-- The events journal. Writers of a replica serialise on its head row, which also carries the
-- last sequence number and timestamp: a row commits only after every row with a smaller
-- sequence number has, so a reader paging by time never skips one.
CREATE TABLE journal_heads (
    replica text COLLATE "C" PRIMARY KEY,
    seq     bigint NOT NULL,
    ts      text COLLATE "C" NOT NULL
);
CREATE TABLE journal (
    replica  text COLLATE "C" NOT NULL,
    seq      bigint NOT NULL,
    kind     text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    ts       text COLLATE "C" NOT NULL,
    body     bytea NOT NULL,
    PRIMARY KEY (replica, seq),
    UNIQUE (replica, event_id, kind)
);
CREATE INDEX journal_by_time ON journal (replica, ts);

-- Leases of work that runs once per deployment, timed by the database's clock.
CREATE TABLE leases (
    name   text COLLATE "C" PRIMARY KEY,
    holder text COLLATE "C" NOT NULL,
    until  timestamptz NOT NULL
);
