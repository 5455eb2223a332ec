/*
 * bunvmm pause protocol: the vCPU workers, a device worker (a back-end serving a queue in poll(2)), the VMM
 * thread (its lifecycle task and its mailbox task), the kick (kvm_run.immediate_exit plus a pending
 * real-time signal), the control eventfd that wakes the device worker, and the guest-facing CPU hotplug
 * eject. model/README.md says what is modelled and abstracted, what each property means and how to run spin.
 *
 * Shared words (Int32 words of one SharedArrayBuffer in bunvmm, src/vcpu/control-block.ts):
 *   CMD[v]             (epoch << 3) | PAUSE | KILL | KICK. Read-modify-write only (CAS loop, Atomics.or);
 *                      every change also notifies, so Atomics.wait(CMD, c) is the guard CMD[v] != c.
 *   RUNSTATE[v]        STARTING | RUNNING | PARKED | EXITED. Written by vCPU v's worker; the VMM writes
 *                      STARTING before it creates a worker for the slot.
 *   ACK[v]             the last epoch vCPU v acknowledged. Written by vCPU v's worker.
 *   IMMEDIATE_EXIT[v]  kvm_run.immediate_exit of vCPU v (the kvm_run page outlives a worker).
 *   SIGPENDING[v]      the kick signal is pending on v's thread (it is blocked outside KVM_RUN).
 *   PENDING_REMOVAL[v] VMM-owned: the VMM asked the guest to eject v. ACTIVE[v]: a worker exists (VMM-owned).
 *   REQ[v]             the REQUEST word: the VMM set SAVE_STATE (while the VM is paused); vCPU v serves it in
 *                      the park, on its own thread, and clears it before it acknowledges the epoch that
 *                      carried it ([served-while-parked]).
 * With -DDEVICE_WORKER (model/check.sh runs it at a smaller K: the device worker multiplies the states):
 *   DCMD, DRUNSTATE, DACK  the device worker's control block (same layout; its own epochs, `depoch`).
 *   CTLFD              its control eventfd is readable (the VMM writes it after every DCMD change).
 *   QFD                its queue eventfd is readable (a vCPU's doorbell write, KVM_IOEVENTFD).
 *   INFLIGHT           the device worker is in the middle of a request.
 *
 * Changes to the protocol as first specified; spin found the need for each (model/README.md, "Findings").
 * All are on by default. -DAS_SPECIFIED turns them all off; -DNO_FIX_<NAME> turns off one.
 *   FIX_ACK_RUNNING  the checkpoint acknowledges (as RUNNING) a newer epoch that carries no PAUSE: a worker
 *                    created while paused and resumed before it first ran; the rollback of a pause.
 *   FIX_EJECT_ONCE   eject reads CMD[sel] first, then checks PENDING_REMOVAL[sel], then sets KILL by CAS
 *                    on the value it read; only that CAS kicks and posts the reap. A (re)activated slot
 *                    gets a fresh epoch, so the CAS cannot succeed on a recycled slot (no ABA).
 *   FIX_EXIT_LAST    an exiting worker writes ACK, then RUNSTATE = EXITED as its last shared write, and
 *                    its thread stays alive until the VMM reaps it (worker.terminate()).
 *   FIX_SERVE_ON_PARK  a vCPU serves a pending request wherever it acknowledges PARKED: in the park and at the
 *                    checkpoint that parks it. Served only in the park, a vCPU hot-added while paused that
 *                    reaches its first checkpoint after the save's epoch acknowledges it unserved.
 *   FIX_DRAIN_THEN_READ  the device worker drains its control eventfd before it reads DCMD
 *                    ([drain-then-read]); read first, a change landing in between is drained away and the
 *                    worker sleeps in poll through a pause (a lost wake-up: the pause needs its deadline).
 */

#ifndef AS_SPECIFIED
#ifndef NO_FIX_ACK_RUNNING
#define FIX_ACK_RUNNING
#endif
#ifndef NO_FIX_EJECT_ONCE
#define FIX_EJECT_ONCE
#endif
#ifndef NO_FIX_EXIT_LAST
#define FIX_EXIT_LAST
#endif
#ifndef NO_FIX_DRAIN_THEN_READ
#define FIX_DRAIN_THEN_READ
#endif
#ifndef NO_FIX_SERVE_ON_PARK
#define FIX_SERVE_ON_PARK
#endif
#endif

#define N         3      /* vCPU slots; slot 0 is never ejected */
#define BOOT      2      /* slots 0 .. BOOT-1 are active at boot */
#ifndef K
#define K         6      /* lifecycle operations (pause, resume, resize) before the final shutdown */
#endif
#ifndef MBOX_CAP
#define MBOX_CAP  2      /* reap requests the mailbox holds; more is a property violation */
#endif

/* CMD word */
#define PAUSE      1
#define KILL       2
#define KICK       4
#define FLAGS(c)   ((c) & 7)
#define EP(c)      ((c) >> 3)
#define PACK(e, f) (((e) << 3) | (f))

/* RUNSTATE */
#define STARTING  0
#define RUNNING   1
#define PARKED    2
#define EXITED    3

/* the VM's API state */
#define VM_RUNNING  0
#define VM_PAUSED   1
#define VM_SHUTDOWN 2
#define VM_SNAPSHOTTING 3   /* paused, and the vCPUs are saving their state */

/* which task runs a synchronous section on the VMM thread (its event loop runs one at a time) */
#define LOOP_FREE      0
#define LOOP_LIFECYCLE 1
#define LOOP_MAILBOX   2

byte CMD[N];
byte RUNSTATE[N];
byte ACK[N];
bit  IMMEDIATE_EXIT[N];
bit  SIGPENDING[N];
byte THREADS[N];          /* live OS threads of slot v's worker(s); a signal needs one */
bit  PENDING_REMOVAL[N];
bit  ACTIVE[N];
bit  REQ[N];

#ifdef DEVICE_WORKER
byte DCMD;
byte DRUNSTATE;
byte DACK;
bit  CTLFD;
bit  QFD;
bit  INFLIGHT;
byte depoch;              /* the device workers' pool has its own epochs */
#endif

byte epoch;               /* the VMM's request epoch for the vCPUs */
byte vmstate = VM_RUNNING;
byte loop = LOOP_FREE;
chan mbox = [MBOX_CAP] of { byte };   /* "reap v" requests, vCPU workers -> VMM thread */

/* ghost state for the properties */
bit  pausing;             /* pause() is in progress: from its start to Paused, or to the end of its rollback */
bit  busy;                /* pause(), resume() or shutdown() is in progress */
bit  deadline_hit;        /* an await on the VMM thread would have needed its deadline */

#ifdef BROKEN_8092
byte vcpu_states_lock;    /* cloud-hypervisor's vcpu_states mutex: 0 = free, else holder + 1 */
#define LOCK_STATES(who)  atomic { vcpu_states_lock == 0 -> vcpu_states_lock = (who) + 1 }
#define UNLOCK_STATES()   vcpu_states_lock = 0
#else
#define LOCK_STATES(who)  skip
#define UNLOCK_STATES()   skip
#endif

#define PAUSED_AT(v, e)  (!ACTIVE[v] || (ACK[v] >= (e) && (RUNSTATE[v] == PARKED || RUNSTATE[v] == EXITED)))
#define RUNNING_AT(v, e) (!ACTIVE[v] || (ACK[v] >= (e) && (RUNSTATE[v] == RUNNING || RUNSTATE[v] == EXITED)))
/* The VMM awaits the vCPUs one by one; once a vCPU satisfies its condition it keeps satisfying it until
   the VMM's next request, so awaiting their conjunction in one step is equivalent. */
#define ALL_PAUSED(e)   (PAUSED_AT(0, e) && PAUSED_AT(1, e) && PAUSED_AT(2, e))
#define ALL_RUNNING(e)  (RUNNING_AT(0, e) && RUNNING_AT(1, e) && RUNNING_AT(2, e))
#define ALL_EXITED      ((!ACTIVE[0] || RUNSTATE[0] == EXITED) && (!ACTIVE[1] || RUNSTATE[1] == EXITED) && \
                         (!ACTIVE[2] || RUNSTATE[2] == EXITED))
#define NO_REMOVAL_PENDING (!PENDING_REMOVAL[0] && !PENDING_REMOVAL[1] && !PENDING_REMOVAL[2])
#define DEV_PAUSED(e)   (DACK >= (e) && (DRUNSTATE == PARKED || DRUNSTATE == EXITED))
#define DEV_RUNNING(e)  (DACK >= (e) && (DRUNSTATE == RUNNING || DRUNSTATE == EXITED))

/*
 * The deadline of an await on the VMM thread. By default it fires only as spin's `timeout` (no process at
 * all can move), and then it is a property violation: spin proves the deadline is never needed. With
 * -DDEADLINE_ANYTIME a pause's deadline may fire at any moment (a slow host) and spin checks the rollback.
 * The broken model has no deadline: cloud-hypervisor's `paused` wait loop has none.
 */
#if defined(BROKEN_8092)
#define PAUSE_DEADLINE  false
#define DEADLINE        false
#elif defined(DEADLINE_ANYTIME)
#define PAUSE_DEADLINE  true
#define DEADLINE        timeout -> deadline_hit = 1; assert(!deadline_hit)
#else
#define PAUSE_DEADLINE  timeout -> deadline_hit = 1; assert(!deadline_hit)   /* a deadline was needed */
#define DEADLINE        timeout -> deadline_hit = 1; assert(!deadline_hit)
#endif

/*
 * The kick, after the caller changed CMD[t] and notified: immediate_exit = 1, then pthread_kill. One step:
 * the vCPU reacts to (immediate_exit || signal) at KVM_RUN entry and clears both together, so the state
 * between the two writes shows it nothing new.
 */
inline kick(t) {
  atomic {
    IMMEDIATE_EXIT[t] = 1;
    assert(THREADS[t] > 0);               /* property: never signal a thread that has ended */
    SIGPENDING[t] = 1
  }
}

inline post_reap(t) {
  atomic {
    if
    :: nfull(mbox) -> mbox!t
    :: full(mbox) -> assert(nfull(mbox))  /* property: the mailbox bound holds */
    fi
  }
}

/* ------------------------------------------------------------------------------------------------------ */
/* vCPU worker (src/vcpu/run-loop.ts); the eject handler is devices/cpu-hotplug-controller.ts             */
/* ------------------------------------------------------------------------------------------------------ */

/*
 * The checkpoint: read CMD once and act on that value. It runs at the end of the step that leads to it
 * (the worker's start, KVM_RUN's EINTR, an exit handled, a wake-up), i.e. without an interleaving point
 * before the read. A CMD change before the read is seen by it; one after it is seen through
 * immediate_exit / the signal (the kicker writes CMD first) or wakes the park wait. The worker's own
 * writes after the read (RUNSTATE, ACK, clearing KICK) are only ever waited for by the VMM, so doing them
 * at the read gives the VMM nothing new. What stays a separate step is the window that matters: CMD is
 * read, then (interleaving point) KVM_RUN is entered.
 */
/* A pending request (save this vCPU's state) is served on this thread, then cleared: before the ACK. */
inline serve() {
  if
  :: REQ[v] -> assert(RUNSTATE[v] == PARKED); REQ[v] = 0
  :: else
  fi
}

inline checkpoint() {
  c = CMD[v];
  if
  :: (c & KILL) -> goto die                        /* [kill-dominates] */
  :: (c & PAUSE) && !(c & KILL) ->
       /* Finish a half-done I/O: KVM_RUN with immediate_exit = 1 returns EINTR before any guest
          instruction; clear immediate_exit and consume a pending signal; then park. */
       IMMEDIATE_EXIT[v] = 1;
       assert(RUNSTATE[v] != PARKED);
       IMMEDIATE_EXIT[v] = 0;
       SIGPENDING[v] = 0;
       RUNSTATE[v] = PARKED;
#ifdef FIX_SERVE_ON_PARK
       serve();
#endif
       ACK[v] = EP(c);
       goto parked
  :: !(c & (PAUSE | KILL)) ->
#ifdef FIX_ACK_RUNNING
       if
       :: RUNSTATE[v] != RUNNING || ACK[v] < EP(c) ->
            RUNSTATE[v] = RUNNING;
            ACK[v] = EP(c)
       :: else
       fi;
#endif
       if
       :: (c & KICK) -> CMD[v] = c - KICK          /* clear KICK by CAS (a failed CAS reads CMD again) */
       :: else
       fi
  fi
}

proctype vcpu(byte v) {
  byte c;        /* CMD as read at the checkpoint */
  byte sel;      /* eject: the CPU the guest selected */
  byte seen;     /* eject: CMD[sel] as the handler read it */

  atomic { checkpoint() }
  goto kvm_run;

parked:
  do
  :: atomic {
       CMD[v] != c ->                              /* Atomics.wait(CMD, c) returns; load CMD */
       c = CMD[v];
       if
       :: (c & KILL) -> goto die
       :: (c & PAUSE) && !(c & KILL) -> serve(); ACK[v] = EP(c)  /* still paused: serve, acknowledge the epoch */
       :: !(c & (PAUSE | KILL)) ->
            RUNSTATE[v] = RUNNING;
            ACK[v] = EP(c);
            if
            :: (c & KICK) -> CMD[v] = c - KICK
            :: else
            fi;
            goto kvm_run
       fi
     }
  od;

  /* KVM_RUN. Entry, the guest running and the exit it takes are one step: a kick that lands while the
     guest runs is the same as one that lands just before this step (EINTR) or just after it (seen at the
     checkpoint, or at the next entry). Only a halted guest waits for the signal. */
kvm_run:
  atomic {
    assert(RUNSTATE[v] != PARKED);                 /* property: no guest entry while acknowledged PARKED */
    if
    :: IMMEDIATE_EXIT[v] || SIGPENDING[v] ->       /* EINTR; clear immediate_exit; sigtimedwait(0) */
         IMMEDIATE_EXIT[v] = 0;
         SIGPENDING[v] = 0;
         checkpoint()
    :: else ->
         assert(vmstate != VM_PAUSED || busy);     /* property: no guest code runs while the VM is Paused */
         assert(vmstate != VM_SNAPSHOTTING);       /* property: none at all while it is being saved */
         if
         :: goto halted                            /* HLT, or a guest spinning: only a signal ends it */
         :: checkpoint()                           /* any other exit, handled in the worker, never waiting */
#ifdef BROKEN_8092
         :: goto controller                        /* read/write of the hotplug status register */
#endif
#ifdef DEVICE_WORKER
         :: v == 0 && !QFD ->                      /* a doorbell write: the queue eventfd (vCPU 0 only, for size) */
              /* property [vcpus-before-devices]: a notification never finds the device worker parked */
              assert(DRUNSTATE != PARKED);
              QFD = 1;
              checkpoint()
#endif
         :: sel = 1; seen = CMD[1]; goto eject     /* eject the selected CPU */
         :: sel = 2; seen = CMD[2]; goto eject
         fi
    fi
  }
  goto kvm_run;

halted:
  atomic {
    SIGPENDING[v] ->
    IMMEDIATE_EXIT[v] = 0;
    SIGPENDING[v] = 0;
    checkpoint()
  }
  goto kvm_run;

#ifdef BROKEN_8092
controller:
  LOCK_STATES(v);
  atomic { UNLOCK_STATES(); checkpoint() }
  goto kvm_run;
#endif

  /* Eject of CPU sel (a write to the hotplug status register). Honoured only for a CPU the VMM marked,
     never CPU 0 (the guest's CPU-0 eject is an exit like any other). The handler never waits. */
eject:
#ifdef BROKEN_8092
  LOCK_STATES(v);
#endif
#ifdef FIX_EJECT_ONCE
  /* seen = CMD[sel] was read in the exit step; then check PENDING_REMOVAL[sel]; then CAS on `seen`. */
eject_check:
  if
  :: atomic {
       !PENDING_REMOVAL[sel] || (seen & KILL) ->   /* not marked, or already being killed: ignore */
       UNLOCK_STATES(); seen = 0; sel = 0;
       checkpoint()
     }
     goto kvm_run
  :: PENDING_REMOVAL[sel] && !(seen & KILL) ->
       atomic {
         if
         :: CMD[sel] == seen -> CMD[sel] = seen | KILL       /* CAS + notify */
         :: else -> seen = CMD[sel]; goto eject_check        /* CMD moved: read it again, check again */
         fi
       }
  fi;
#else
  if
  :: atomic { !PENDING_REMOVAL[sel] -> UNLOCK_STATES(); seen = 0; sel = 0; checkpoint() }
     goto kvm_run
  :: PENDING_REMOVAL[sel] ->
       CMD[sel] = CMD[sel] | KILL                 /* Atomics.or + notify */
  fi;
#endif
  kick(sel);
  atomic {
    post_reap(sel);
    UNLOCK_STATES(); seen = 0; sel = 0;
    checkpoint()
  }
  goto kvm_run;

die:
#ifdef FIX_EXIT_LAST
  ACK[v] = EP(c);
  RUNSTATE[v] = EXITED                             /* last write; the thread stays until the reap */
#else
  RUNSTATE[v] = EXITED;
  ACK[v] = EP(c);
  THREADS[v]--                                     /* the worker's thread ends */
#endif
}

#ifdef DEVICE_WORKER
/* ------------------------------------------------------------------------------------------------------ */
/* Device worker (devices/device-worker-loop.ts): poll(control eventfd, queue eventfd), serve, park       */
/* ------------------------------------------------------------------------------------------------------ */

proctype device() {
  byte c;        /* DCMD as read at the top of the loop */

  /* The top of the loop: drain the control eventfd, load CMD, act on it. As at the vCPU checkpoint, the
     worker's own writes after the load (RUNSTATE, ACK) are only waited for by the VMM, so they happen at
     the load; the drain and the load stay separate steps: that window is the one that matters. */
top:
#ifdef FIX_DRAIN_THEN_READ
  CTLFD = 0;                                       /* read(control eventfd): drain ... */
  atomic {
    c = DCMD;                                      /* ... then load CMD */
#else
  atomic {
    c = DCMD;
#endif
    if
    :: (c & KILL) -> goto ddie                     /* [kill-dominates] */
    :: (c & PAUSE) && !(c & KILL) ->
         DRUNSTATE = PARKED; DACK = EP(c);         /* nothing in flight here: serving has returned */
         goto dparked
    :: !(c & (PAUSE | KILL)) ->
         if
         :: DRUNSTATE != RUNNING || DACK < EP(c) -> DRUNSTATE = RUNNING; DACK = EP(c)
         :: else
         fi;
         c = 0
    fi
  }
#ifndef FIX_DRAIN_THEN_READ
  CTLFD = 0;
#endif
  atomic {                                         /* poll(2), no timeout; then serve a request */
    CTLFD || QFD ->
    if
    :: QFD -> QFD = 0; INFLIGHT = 1
    :: else
    fi
  }
  INFLIGHT = 0;                                    /* the request finished: only then back to the top */
  goto top;

dparked:
  atomic { DCMD != c -> skip }                     /* Atomics.wait(CMD, c): every change notifies */
  goto top;

ddie:
  DACK = EP(c);
  DRUNSTATE = EXITED
}

/* The VMM's writes to the device worker: CAS DCMD (and notify), then write the control eventfd. */
inline dev_request(set, clear) {
  atomic { depoch++; DCMD = PACK(depoch, (FLAGS(DCMD) | (set)) & ~(clear)) }
  CTLFD = 1
}

#endif

/* ------------------------------------------------------------------------------------------------------ */
/* VMM thread, lifecycle task (src/vmm/worker-pool.ts, src/vmm/vm.ts): one operation at a time           */
/* ([serialised-lifecycle])                                                                               */
/* ------------------------------------------------------------------------------------------------------ */

/* The VMM's writes to one vCPU. ACTIVE[x] cannot change during a synchronous section of the lifecycle
   task (only the mailbox task clears it, and it waits for the event loop), so testing it is part of the
   first write. Each CMD update is a CAS loop (or Atomics.or) followed by Atomics.notify. */
inline request_pause(x) {                          /* CMD = (epoch, flags | PAUSE); notify; kick */
  if
  :: atomic { ACTIVE[x] -> CMD[x] = PACK(epoch, FLAGS(CMD[x]) | PAUSE) }
     kick(x)
  :: !ACTIVE[x]
  fi
}
inline request_unpause(x) {                        /* CMD = (epoch, flags & ~PAUSE); notify (no kick) */
  if
  :: atomic { ACTIVE[x] -> CMD[x] = PACK(epoch, FLAGS(CMD[x]) & ~PAUSE) }
  :: !ACTIVE[x]
  fi
}
/* REQUEST = SAVE_STATE; CMD = (epoch, flags); notify (no kick). Not asked: a vCPU with KILL set (a guest
   eject still in flight when the VM paused: it exits and is reaped, it has no state to save). While the VM
   is paused no guest runs, so no new KILL can appear: `asked` is stable for the whole save. */
inline request_save(x) {
  if
  :: atomic { ACTIVE[x] && !(CMD[x] & KILL) -> asked = asked | (1 << x) }
     REQ[x] = 1;
     atomic { CMD[x] = PACK(epoch, FLAGS(CMD[x])) }
  :: else
  fi
}
#define ASKED(x)        ((asked >> (x)) & 1)
#define SAVED_AT(x, e)  (!ASKED(x) || PAUSED_AT(x, e))
#define ALL_SAVED(e)    (SAVED_AT(0, e) && SAVED_AT(1, e) && SAVED_AT(2, e))
#define SERVED(x)       (!ASKED(x) || RUNSTATE[x] == EXITED || !REQ[x])
inline request_kill(x) {                           /* CMD |= KILL; notify; kick */
  if
  :: atomic { ACTIVE[x] -> CMD[x] = CMD[x] | KILL }
     kick(x)
  :: !ACTIVE[x]
  fi
}

proctype vmm() {
  byte ops;      /* operations done so far */
  byte asked;    /* snapshot: the vCPUs asked to save their state, one bit each */
  byte v;        /* resize: the slot */

  do
  :: atomic {                                     /* pause() */
       ops < K && vmstate == VM_RUNNING && loop == LOOP_FREE ->
       ops++; loop = LOOP_LIFECYCLE; busy = 1; pausing = 1;
       epoch++
     }
#ifdef BROKEN_8092
     LOCK_STATES(N);                              /* #8092: held over set PAUSE, kick and the wait */
#endif
     request_pause(0); request_pause(1); request_pause(2);
     loop = LOOP_FREE;                            /* await; the mailbox is served meanwhile ([vmm-never-blocks]) */
#ifdef DEVICE_WORKER
     if
     :: atomic { loop == LOOP_FREE && ALL_PAUSED(epoch) -> UNLOCK_STATES(); loop = LOOP_LIFECYCLE }
        /* [vcpus-before-devices]: every vCPU is parked; now the device worker */
        dev_request(PAUSE, 0);
        loop = LOOP_FREE;
        if
        :: atomic {
             loop == LOOP_FREE && DEV_PAUSED(depoch) ->
             vmstate = VM_PAUSED;
             /* property: the API state matches the workers, and no request is in flight */
             assert(!ACTIVE[0] || RUNSTATE[0] == PARKED || RUNSTATE[0] == EXITED);
             assert(!ACTIVE[1] || RUNSTATE[1] == PARKED || RUNSTATE[1] == EXITED);
             assert(!ACTIVE[2] || RUNSTATE[2] == PARKED || RUNSTATE[2] == EXITED);
             assert(DRUNSTATE == PARKED && !INFLIGHT);
             pausing = 0; busy = 0
           }
        :: PAUSE_DEADLINE ->                      /* the device did not park: un-park it, then the vCPUs */
             atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE }
             dev_request(0, PAUSE);
             loop = LOOP_FREE;
             if
             :: atomic { loop == LOOP_FREE && DEV_RUNNING(depoch) -> loop = LOOP_LIFECYCLE; epoch++ }
                request_unpause(0); request_unpause(1); request_unpause(2);
                loop = LOOP_FREE;
                if
                :: atomic { loop == LOOP_FREE && ALL_RUNNING(epoch) -> pausing = 0; busy = 0 }
                :: DEADLINE
                fi
             :: DEADLINE
             fi
        fi
     :: PAUSE_DEADLINE ->                         /* roll back (resume), report the vCPU, epoch and state */
          atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE; epoch++ }
          request_unpause(0); request_unpause(1); request_unpause(2);
          loop = LOOP_FREE;
          if
          :: atomic { loop == LOOP_FREE && ALL_RUNNING(epoch) -> pausing = 0; busy = 0 }
          :: DEADLINE
          fi
     :: PAUSE_DEADLINE ->                         /* roll back (resume), report the vCPU, epoch and state */
          atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE; epoch++ }
          request_unpause(0); request_unpause(1); request_unpause(2);
          loop = LOOP_FREE;
          if
          :: atomic { loop == LOOP_FREE && ALL_RUNNING(epoch) -> pausing = 0; busy = 0 }
          :: DEADLINE
          fi
     fi
#else
     if
     :: atomic {
          loop == LOOP_FREE && ALL_PAUSED(epoch) ->
          UNLOCK_STATES();
          vmstate = VM_PAUSED;
          /* property: the API state matches the vCPUs */
          assert(!ACTIVE[0] || RUNSTATE[0] == PARKED || RUNSTATE[0] == EXITED);
          assert(!ACTIVE[1] || RUNSTATE[1] == PARKED || RUNSTATE[1] == EXITED);
          assert(!ACTIVE[2] || RUNSTATE[2] == PARKED || RUNSTATE[2] == EXITED);
          pausing = 0; busy = 0
        }
     :: PAUSE_DEADLINE ->                         /* roll back (resume), report the vCPU, epoch and state */
          atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE; epoch++ }
          request_unpause(0); request_unpause(1); request_unpause(2);
          loop = LOOP_FREE;
          if
          :: atomic { loop == LOOP_FREE && ALL_RUNNING(epoch) -> pausing = 0; busy = 0 }
          :: DEADLINE
          fi
     fi
#endif

  :: atomic {                                     /* resume() */
       ops < K && vmstate == VM_PAUSED && loop == LOOP_FREE ->
       ops++; loop = LOOP_LIFECYCLE; busy = 1;
#ifndef DEVICE_WORKER
       epoch++
#endif
     }
#ifdef DEVICE_WORKER
     dev_request(0, PAUSE);                       /* the device worker first ([vcpus-before-devices]) */
     loop = LOOP_FREE;
     if
     :: atomic { loop == LOOP_FREE && DEV_RUNNING(depoch) -> loop = LOOP_LIFECYCLE; epoch++ }
     :: DEADLINE
     fi;
#endif
     request_unpause(0); request_unpause(1); request_unpause(2);
     loop = LOOP_FREE;
     if
     :: atomic {
          loop == LOOP_FREE && ALL_RUNNING(epoch) ->
          vmstate = VM_RUNNING;
          assert(!ACTIVE[0] || RUNSTATE[0] == RUNNING || RUNSTATE[0] == EXITED);
          assert(!ACTIVE[1] || RUNSTATE[1] == RUNNING || RUNSTATE[1] == EXITED);
          assert(!ACTIVE[2] || RUNSTATE[2] == RUNNING || RUNSTATE[2] == EXITED);
          busy = 0
        }
     :: DEADLINE
     fi

  :: atomic {                                     /* snapshot(): each vCPU saves its state in the park */
       ops < K && vmstate == VM_PAUSED && loop == LOOP_FREE ->
       ops++; loop = LOOP_LIFECYCLE; busy = 1;
       vmstate = VM_SNAPSHOTTING;
       epoch++; asked = 0
     }
     request_save(0); request_save(1); request_save(2);
     loop = LOOP_FREE;
     if
     :: atomic {
          loop == LOOP_FREE && ALL_SAVED(epoch) ->
          /* property [served-while-parked]: an acknowledged epoch means the request was served */
          assert(SERVED(0) && SERVED(1) && SERVED(2));
#ifdef DEVICE_WORKER
          assert(DRUNSTATE == PARKED && !INFLIGHT);  /* the devices are saved with their worker parked */
#endif
          vmstate = VM_PAUSED;
          busy = 0; asked = 0
        }
     :: DEADLINE
     fi

  :: atomic {                                     /* resize: add a vCPU (refused while a removal is pending) */
       ops < K && loop == LOOP_FREE && NO_REMOVAL_PENDING && (!ACTIVE[1] || !ACTIVE[2]) ->
       ops++;
       if
       :: !ACTIVE[1] -> v = 1
       :: !ACTIVE[2] -> v = 2
       fi;
#ifdef FIX_EJECT_ONCE
       epoch++;                                   /* a reused slot starts from a fresh epoch */
#endif
       /* INSERTING[v] = 1 (guest-visible only) */
       CMD[v] = PACK(epoch, (vmstate == VM_PAUSED -> PAUSE : 0));
       RUNSTATE[v] = STARTING;
       ACTIVE[v] = 1;
       THREADS[v]++;
       run vcpu(v);                               /* new Worker; then notify the GED */
       v = 0
     }

  :: atomic {                                     /* resize: remove a vCPU (refused while one is pending) */
       ops < K && loop == LOOP_FREE && NO_REMOVAL_PENDING && (ACTIVE[1] || ACTIVE[2]) ->
       ops++;
       if
       :: ACTIVE[1] -> v = 1
       :: ACTIVE[2] -> v = 2
       fi;
       /* REMOVING[v] = 1 (guest-visible only) */
       PENDING_REMOVAL[v] = 1;                    /* then notify the GED */
       v = 0
     }

#ifdef KICK_OP
  :: atomic {                                     /* kick(v) with KICK: come out of KVM_RUN and go on */
       ops < K && loop == LOOP_FREE ->
       ops++; loop = LOOP_LIFECYCLE;
       if
       :: ACTIVE[0] -> v = 0
       :: ACTIVE[1] -> v = 1
       :: ACTIVE[2] -> v = 2
       fi;
       CMD[v] = CMD[v] | KICK                     /* Atomics.or + notify */
     }
     kick(v);
     atomic { loop = LOOP_FREE; v = 0 }
#endif
  :: atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE; busy = 1 }; break   /* shutdown() */
  od;

  /* shutdown(): KILL every active vCPU, kick it, await EXITED */
  request_kill(0); request_kill(1); request_kill(2);
  loop = LOOP_FREE;
#ifdef DEVICE_WORKER
  if
  :: atomic { loop == LOOP_FREE && ALL_EXITED -> loop = LOOP_LIFECYCLE }
  :: DEADLINE
  fi;
  dev_request(KILL, 0);                           /* then the device worker */
  loop = LOOP_FREE;
  if
  :: atomic { loop == LOOP_FREE && DRUNSTATE == EXITED -> vmstate = VM_SHUTDOWN; busy = 0 }
  :: DEADLINE
  fi
#else
  if
  :: atomic { loop == LOOP_FREE && ALL_EXITED -> vmstate = VM_SHUTDOWN; busy = 0 }
  :: DEADLINE
  fi
#endif
}

/* ------------------------------------------------------------------------------------------------------ */
/* VMM thread, mailbox task: runs whenever the lifecycle task awaits ([vmm-never-blocks])                */
/* ------------------------------------------------------------------------------------------------------ */

active proctype mailbox() {
  byte r;
end_idle:
  do
  :: atomic { loop == LOOP_FREE && nempty(mbox) -> mbox?r }
     atomic {                                      /* reap r: await RUNSTATE[r] == EXITED */
       loop == LOOP_FREE && RUNSTATE[r] == EXITED ->
       loop = LOOP_MAILBOX;
       assert(r != 0 && PENDING_REMOVAL[r]);       /* property: only a CPU the VMM marked is removed */
       ACTIVE[r] = 0;
#ifdef FIX_EXIT_LAST
       THREADS[r]--                                /* worker.terminate() */
#endif
     }
     atomic { PENDING_REMOVAL[r] = 0; loop = LOOP_FREE; r = 0 }   /* last: resize may go on */
  od
}

init {
  byte i;
  atomic {
    for (i : 0 .. N - 1) {
      if
      :: i < BOOT -> ACTIVE[i] = 1; RUNSTATE[i] = STARTING; THREADS[i] = 1; run vcpu(i)
      :: else -> RUNSTATE[i] = EXITED              /* no worker yet */
      fi
    }
#ifdef DEVICE_WORKER
    DRUNSTATE = STARTING;
    run device();
#endif
    run vmm()
  }
}

ltl pause_completes { [] (pausing -> <> !pausing) }
ltl ops_complete    { [] (busy -> <> !busy) }
