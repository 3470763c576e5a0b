package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"moderator/jobs"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// jobA and jobB are the jobs of two toy queues, a and b.
type jobA struct {
	Age int `json:"age"` // seconds since a dead process marked it running
}

func (jobA) Kind() string                 { return "toy_a" }
func (jobA) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "a"} }
func (j jobA) age() int                   { return j.Age }

type jobB struct {
	Age int `json:"age"`
}

func (jobB) Kind() string                 { return "toy_b" }
func (jobB) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "b"} }
func (j jobB) age() int                   { return j.Age }

type toyJob interface {
	river.JobArgs
	age() int
}

// toyQueue is a queue whose worker reports the ages of the jobs it runs.
type toyQueue[T toyJob] struct {
	name    string
	longest time.Duration
	ran     chan int
	jobs.Attachment
}

func (q *toyQueue[T]) Register(workers *river.Workers) (jobs.Spec, error) {
	if err := river.AddWorkerSafely[T](workers, &toyWorker[T]{q: q}); err != nil {
		return jobs.Spec{}, err
	}
	return jobs.Spec{Name: q.name, Config: river.QueueConfig{MaxWorkers: 2}, LongestRun: q.longest}, nil
}

type toyWorker[T toyJob] struct {
	river.WorkerDefaults[T]
	q *toyQueue[T]
}

func (w *toyWorker[T]) Work(_ context.Context, job *river.Job[T]) error {
	w.q.ran <- job.Args.age()
	return nil
}

func (w *toyWorker[T]) Timeout(*river.Job[T]) time.Duration { return w.q.longest }

// TestOneClientRescuesEveryQueue: jobs of two queues left running by a
// process that died are run again by the one client, while a job younger
// than the longest run is left alone. Before package jobs each queue had
// a client of its own; River's leader (one per database) rescued only its
// own queue's jobs at its own horizon and discarded the other's as an
// unknown kind, so an action left running by a crash could be lost.
func TestOneClientRescuesEveryQueue(t *testing.T) {
	ctx := context.Background()
	pool := storetest.OwnStore(t).Pool()
	a := &toyQueue[jobA]{name: "a", longest: 20 * time.Second, ran: make(chan int, 8)}
	b := &toyQueue[jobB]{name: "b", longest: 10 * time.Second, ran: make(chan int, 8)}
	if _, err := a.Client(); !errors.Is(err, jobs.ErrNotAttached) {
		t.Fatalf("a queue in no client: Client() error %v, want ErrNotAttached", err)
	}
	client, err := jobs.New(pool, jobs.Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := 25 * time.Second; client.RescueAfter != want {
		t.Errorf("RescueAfter = %v, want the longest run plus 5 s, %v", client.RescueAfter, want)
	}
	inserter, err := a.Client()
	if _, errB := b.Client(); err != nil || errB != nil {
		t.Fatalf("a queue was not attached to the client: %v, %v", err, errB)
	}
	// Three jobs marked running by a process that is gone: one of each
	// queue for ten minutes (stuck), one of a just now (its run may be
	// live).
	for _, job := range []toyJob{jobA{Age: 600}, jobB{Age: 600}, jobA{Age: 0}} {
		res, err := inserter.Insert(ctx, job, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
			attempted_at = now() - make_interval(secs => $2), attempted_by = '{dead-process}' WHERE id = $1`,
			res.Job.ID, job.age()); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := client.Stop(sctx); err != nil {
			t.Error(err)
		}
	})
	// The rescuer runs at once on the elected leader, then every 30 s.
	for name, ran := range map[string]chan int{"a": a.ran, "b": b.ran} {
		select {
		case age := <-ran:
			if age != 600 {
				t.Errorf("queue %s ran the job marked running %d s ago, want the stuck one", name, age)
			}
		case <-time.After(40 * time.Second):
			t.Fatalf("queue %s: the stuck job was never run again", name)
		}
	}
	var state string
	if err := pool.QueryRow(ctx, `SELECT state FROM river_job WHERE args->>'age' = '0'`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "running" {
		t.Errorf("the job marked running at the start is %s, want running: rescued while its run may be live", state)
	}
}
