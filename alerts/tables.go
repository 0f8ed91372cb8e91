package alerts

import "github.com/mlwatch/mlwatch/store"

// The alerts package's tables (named by store.Tables): alert state,
// silences, the notification outbox and triage actions. TableDefs names them under a set
// of tables; each column list below is the order of its Insert.

// alertsTable holds one row per alert fingerprint; the latest version
// wins. data holds the whole alert (finding, timestamps, what each
// receiver was sent); the other columns are for people and SQL.
var alertsTable = store.TableDef{
	Columns: [][2]string{
		{"fingerprint", "String"},
		{"version", "UInt64"},
		{"updated_at", "DateTime"},
		{"state", "String"},  // pending | firing | resolved | inactive
		{"source", "String"}, // the run name that observed it
		{"detector", "String"},
		{"model", "String"},
		{"class", "String"},
		{"owner", "String"},
		{"severity", "String"},
		{"labels", "String"}, // JSON object
		{"active_at", "DateTime"},
		{"fired_at", "DateTime"},
		{"resolved_at", "DateTime"},
		{"last_eval_at", "DateTime"},
		{"value", "Float64"},
		{"baseline", "Float64"},
		{"p_value", "Float64"},
		{"summary", "String"},
		{"caused_by", "String"},
		{"silenced_by", "String"}, // comma-separated silence IDs
		{"data", "String"},        // JSON of the whole alert
	},
	Engine: "ReplacingMergeTree(version) ORDER BY fingerprint",
}

// silencesTable holds silences, latest version of each wins.
var silencesTable = store.TableDef{
	Columns: [][2]string{
		{"id", "String"},
		{"version", "UInt64"},
		{"matchers", "String"}, // JSON list of {name, op, value}
		{"starts_at", "DateTime"},
		{"ends_at", "DateTime"},
		{"created_by", "String"},
		{"comment", "String"},
		{"updated_at", "DateTime"},
	},
	Engine: "ReplacingMergeTree(version) ORDER BY id",
}

// outboxTable holds one row per notification, written (pending) before
// it is sent and versioned after each attempt.
var outboxTable = store.TableDef{
	Columns: [][2]string{
		{"id", "String"},
		{"version", "UInt64"},
		{"seq", "UInt64"}, // delivery order
		{"created_at", "DateTime"},
		{"receiver", "String"},
		{"group_key", "String"},
		{"kind", "String"},    // firing | update | resolved
		{"thread", "String"},  // id of the group's first message; "" for a first message
		{"payload", "String"}, // JSON of the notification
		{"status", "String"},  // pending | sent | dead
		{"attempts", "UInt32"},
		{"next_attempt_at", "DateTime"},
		{"last_error", "String"},
		{"sent_at", "DateTime"},
		{"ref", "String"}, // what the receiver returned (Slack CHANNEL/TS)
	},
	Engine: "ReplacingMergeTree(version) PARTITION BY toYYYYMM(created_at) ORDER BY id",
}

// triageTable holds one row per triage action (triage.go).
var triageTable = store.TableDef{
	Columns: [][2]string{
		{"at", "DateTime"},
		{"id", "String"},
		{"action", "String"}, // ack | silence | false_positive | expected
		{"fingerprint", "String"},
		{"alert_active_at", "DateTime"}, // the incident the action is about
		{"detector", "String"},
		{"model", "String"},
		{"class", "String"},
		{"severity", "String"},
		{"user_id", "String"},
		{"user_name", "String"},
		{"transport", "String"}, // socket_mode | http | api
		{"receiver", "String"},
		{"silence_id", "String"},
		{"silence_for", "String"}, // 1h | 4h | 24h | until_resolved
		{"reason", "String"},
	},
	Engine: "MergeTree PARTITION BY toYYYYMM(at) ORDER BY (fingerprint, at)",
}

// peersTable holds one row per replica of an HA group, its latest
// heartbeat winning (peer.go).
var peersTable = store.TableDef{
	Columns: [][2]string{
		{"id", "String"},
		{"seen_at", "DateTime"},
		{"version", "UInt64"},
	},
	Engine: "ReplacingMergeTree(version) ORDER BY id",
}

var (
	alertColumns   = alertsTable.ColumnNames()
	silenceColumns = silencesTable.ColumnNames()
	outboxColumns  = outboxTable.ColumnNames()
)

// TableDefs are the alerts package's tables named under t, for store.Apply.
func TableDefs(t store.Tables) []store.TableDef {
	return []store.TableDef{alertsTable.Named(t.Alerts()), silencesTable.Named(t.Silences()), outboxTable.Named(t.Outbox()), triageTable.Named(t.Triage()), peersTable.Named(t.Peers())}
}
