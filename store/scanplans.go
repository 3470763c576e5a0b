package store

import (
	"reflect"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// scanPlansKey is the key of a connection's scanPlans in its CustomData.
const scanPlansKey = "moderator.scanPlans"

// scanPlanKey identifies a scan plan: what it reads (a column's type and
// format) and into what.
type scanPlanKey struct {
	oid    uint32
	format int16
	into   reflect.Type
}

// scanPlans are a connection's scan plans, kept from one query to the
// next. pgx plans how to scan each column on a result's first row and
// forgets the plans with the result, so a recording transaction, whose
// answers are a row or two at a few hundred webhooks a second, planned
// every column of its history read for every batch: a twentieth of the
// server's CPU at 500/s (pprof, 2026-12-06), for plans that depend only
// on the column's type and the destination's. pgx keeps its encode plans
// per connection in the same way (pgtype.Map's memoized plans).
type scanPlans map[scanPlanKey]pgtype.ScanPlan

// scanRow scans the current row of rows into dest, as rows.Scan does (a
// nil destination skips its column), with the plans the connection has
// kept. A connection is used by one goroutine at a time, so its plans
// need no lock.
func scanRow(rows pgx.Rows, dest ...any) error {
	conn := rows.Conn()
	if conn == nil {
		return rows.Scan(dest...)
	}
	fields, values := rows.FieldDescriptions(), rows.RawValues()
	if len(fields) != len(dest) || len(values) != len(dest) {
		return rows.Scan(dest...) // its error says what does not match
	}
	data := conn.PgConn().CustomData()
	plans, _ := data[scanPlansKey].(scanPlans)
	if plans == nil {
		plans = scanPlans{}
		data[scanPlansKey] = plans
	}
	typeMap := conn.TypeMap()
	for i, d := range dest {
		if d == nil {
			continue
		}
		key := scanPlanKey{oid: fields[i].DataTypeOID, format: fields[i].Format, into: reflect.TypeOf(d)}
		plan, ok := plans[key]
		if !ok {
			plan = typeMap.PlanScan(key.oid, key.format, d)
			plans[key] = plan
		}
		if err := plan.Scan(values[i], d); err != nil {
			return pgx.ScanArgError{ColumnIndex: i, FieldName: fields[i].Name, Err: err}
		}
	}
	return nil
}
