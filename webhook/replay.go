package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"moderator/spool"
)

// QueueingAuditLog is an AuditLog that can queue a delivery and wait for
// its commit later. The replayer uses it when the AuditLog has it, so that
// a backlog is queued in its order while many of its deliveries share each
// commit.
type QueueingAuditLog interface {
	SubmitEvent(ctx context.Context, d Delivery) (wait func(context.Context) (Recorded, error), err error)
}

const (
	// replayChunk is how many spooled deliveries the replayer reads and
	// queues at a time.
	replayChunk = 256
	// replaySetAside labels a spooled delivery the database refused for
	// good, copied aside in the spool folder.
	replaySetAside = "set_aside"
	// replayPauseMax bounds the wait between replay attempts while the
	// database fails.
	replayPauseMax = 2 * time.Second
)

// Replay records the spooled deliveries, oldest first, whenever there are
// some, until ctx ends. It starts with whatever a previous run (or a crash)
// left in the spool.
func (in *Intake) Replay(ctx context.Context) {
	if in.spool == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		in.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-in.wake:
		case <-tick.C:
		}
	}
}

// drain replays until the spool is empty or ctx ends; while the database
// fails it retries the oldest delivery alone, pausing from 100 ms up to
// replayPauseMax between attempts, and goes back to whole chunks once it
// is recorded. (A chunk's deliveries share commits across the batcher's
// flushers: queued while the database fails, a later one could commit
// before an earlier one's retry, and be judged out of order.)
func (in *Intake) drain(ctx context.Context) {
	pause, chunk := 100*time.Millisecond, 1
	start, replayed := time.Now(), 0
	for ctx.Err() == nil && in.spool.Len() > 0 {
		done, read, err := in.replayChunk(ctx, chunk)
		if !read {
			// Appended but not yet durable: its fsync is under way.
			sleep(ctx, 5*time.Millisecond)
			continue
		}
		replayed += done
		if err != nil {
			in.m.replayErrors.Inc()
			in.logger.Warn("spool replay waiting", "error", err.Error(), "spooled", in.spool.Len(),
				"retry_in", pause.String())
			sleep(ctx, pause)
			pause, chunk = min(pause*2, replayPauseMax), 1
			continue
		}
		pause, chunk = 100*time.Millisecond, replayChunk
	}
	if replayed > 0 {
		in.logger.Info("spool replayed", "records", replayed, "duration_ms", time.Since(start).Milliseconds(),
			"spooled", in.spool.Len())
	}
}

// replayChunk replays up to chunk deliveries from the spool's head and
// acknowledges those done (read is false when none was durable yet),
// keeping EraseSpooled off the spool meanwhile; then it carries out the
// erasures the replayed deliveries asked for (which rewrite the spool).
func (in *Intake) replayChunk(ctx context.Context, chunk int) (done int, read bool, err error) {
	select {
	case in.replaying <- struct{}{}:
	case <-ctx.Done():
		return 0, true, ctx.Err()
	}
	entries, err := in.spool.Read(in.spool.Head(), chunk)
	if err == nil && len(entries) == 0 {
		<-in.replaying
		return 0, false, nil
	}
	var erase []string
	if err == nil {
		done, erase, err = in.replay(ctx, entries)
	}
	if ackErr := in.spool.Ack(entries[:done]...); ackErr != nil && err == nil {
		err = ackErr
	}
	<-in.replaying
	in.eraseReplayed(ctx, erase)
	return done, true, err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// replay records entries in order and returns how many, from the first,
// are done (committed, or set aside), and the users whose erasure the
// recorded ones ask for (hard user.deleted); err is the transient failure
// that stopped it.
func (in *Intake) replay(ctx context.Context, entries []spool.Entry) (int, []string, error) {
	type item struct {
		d          Delivery
		line       canonical
		wait       func(context.Context) (Recorded, error)
		start      time.Time
		unreadable error // cannot be decoded: set aside, whatever the database says
	}
	items := make([]item, len(entries))
	var erase []string
	queue, _ := in.audit.(QueueingAuditLog)
	for i, e := range entries {
		it := &items[i]
		it.start = time.Now()
		d, err := in.decode(e.Data)
		if err != nil {
			it.unreadable = err
			continue
		}
		it.d, it.line = d, canonical{webhookID: d.WebhookID, attempt: d.Attempt, eventType: d.Event.Type,
			bytes: len(d.Body), compressed: d.Compressed}
		in.judge(&it.d, &it.line)
		if queue == nil {
			rec, err := in.audit.RecordEvent(ctx, it.d)
			it.wait = func(context.Context) (Recorded, error) { return rec, err }
			continue
		}
		if it.wait, err = queue.SubmitEvent(ctx, it.d); err != nil {
			it.wait = failed(err)
		}
	}
	for i := range items {
		it := &items[i]
		if it.unreadable != nil {
			in.setAside(entries[i], it.unreadable, &it.line)
			it.line.logReplayed(ctx, in.logger, entries[i], time.Since(it.start))
			continue
		}
		rec, err := it.wait(ctx)
		in.health.note(err, in.transient)
		switch {
		case err == nil:
			in.noteRecorded(it.d, rec, &it.line)
			in.m.replayed.WithLabelValues(it.line.outcome).Inc()
			if id := deletedUser(it.d.Event); id != "" && rec.QuarantineID == 0 {
				erase = append(erase, id)
			}
		case in.transient(err):
			return i, erase, err
		default:
			in.setAside(entries[i], err, &it.line)
		}
		it.line.logReplayed(ctx, in.logger, entries[i], time.Since(it.start))
	}
	return len(items), erase, nil
}

func failed(err error) func(context.Context) (Recorded, error) {
	return func(context.Context) (Recorded, error) { return Recorded{}, err }
}

// setAside copies a spooled delivery the database refused for good (or
// that cannot be read back) to the spool's set-aside folder, so that it
// leaves the backlog without being lost.
func (in *Intake) setAside(e spool.Entry, cause error, line *canonical) {
	in.m.replayed.WithLabelValues(replaySetAside).Inc()
	line.outcome, line.err = replaySetAside, cause
	path, err := in.spool.SetAside(e)
	if err != nil {
		line.err = fmt.Errorf("%w; and copying it aside failed: %w", cause, err)
		return
	}
	line.setAsideAt = path
}

// logReplayed writes the canonical line of a replayed delivery.
func (c *canonical) logReplayed(ctx context.Context, logger *slog.Logger, e spool.Entry, elapsed time.Duration) {
	status := 200
	if c.outcome == replaySetAside {
		status = 500
	}
	c.replayedAfter = time.Since(e.Time)
	c.logAs(ctx, logger, "webhook replayed", status, elapsed)
}

// A spooled delivery is, in order: a format version (1), the webhook id
// and the API key (each a uvarint length and the bytes), the attempt
// (uvarint), flags (bit 0: the body came gzipped), the receive time (unix
// nanoseconds, varint), then the body as signed (decompressed), to the end.
const spoolFormat = 1

func encodeDelivery(d Delivery) []byte {
	b := make([]byte, 0, 32+len(d.WebhookID)+len(d.APIKey)+len(d.Body))
	b = append(b, spoolFormat)
	b = binary.AppendUvarint(b, uint64(len(d.WebhookID)))
	b = append(b, d.WebhookID...)
	b = binary.AppendUvarint(b, uint64(len(d.APIKey)))
	b = append(b, d.APIKey...)
	b = binary.AppendUvarint(b, uint64(max(d.Attempt, 0)))
	var flags byte
	if d.Compressed {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, d.ReceivedAt.UnixNano())
	return append(b, d.Body...)
}

var errSpoolRecord = errors.New("unreadable spooled delivery")

// decode reads a spooled delivery back into a Delivery, parsing its body
// as a live one's is parsed.
func (in *Intake) decode(b []byte) (Delivery, error) {
	h, body, err := splitDelivery(b)
	if err != nil {
		return Delivery{}, err
	}
	v, perr := parseVerified(h.apiKey, body, h.flags&1 != 0)
	if perr != nil {
		return Delivery{}, fmt.Errorf("%w: %w", errSpoolRecord, perr)
	}
	return in.delivery(h.webhookID, int(min(h.attempt, 1<<31)), *v, time.Unix(0, h.received)), nil
}

// spoolHeader is what a spooled delivery holds before its body.
type spoolHeader struct {
	webhookID, apiKey string
	attempt           uint64
	flags             byte
	received          int64
}

// splitDelivery reads a spooled delivery's header and returns it with the
// body (a subslice of b).
func splitDelivery(b []byte) (spoolHeader, []byte, error) {
	if len(b) == 0 || b[0] != spoolFormat {
		return spoolHeader{}, nil, fmt.Errorf("%w: unknown format", errSpoolRecord)
	}
	b = b[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var h spoolHeader
	var ok1, ok2 bool
	h.webhookID, ok1 = str()
	h.apiKey, ok2 = str()
	attempt, k := binary.Uvarint(b)
	if !ok1 || !ok2 || k <= 0 || len(b) < k+1 {
		return spoolHeader{}, nil, fmt.Errorf("%w: truncated header", errSpoolRecord)
	}
	h.attempt, h.flags = attempt, b[k]
	b = b[k+1:]
	received, k := binary.Varint(b)
	if k <= 0 {
		return spoolHeader{}, nil, fmt.Errorf("%w: truncated header", errSpoolRecord)
	}
	h.received = received
	return h, b[k:], nil
}
