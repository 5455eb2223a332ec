/*
 * bunvmm pause protocol: vCPU workers, the VMM thread's lifecycle task and its mailbox task,
 * the kick (immediate_exit + a pending real-time signal) and the guest-facing CPU hotplug controller.
 * See model/README.md for what is modelled, the properties and how to run spin.
 *
 * Shared words (one SharedArrayBuffer of Int32 in bunvmm):
 *   CMD[v]             (epoch << 3) | PAUSE | KILL | KICK; read-modify-write only (CAS / Atomics.or); every
 *                      change also notifies, so "Atomics.wait(CMD, c)" is modelled as the guard CMD[v] != c.
 *   RUNSTATE[v]        STARTING | RUNNING | PARKED | EXITED; written by vCPU v's worker (the VMM writes
 *                      STARTING before it creates a worker for the slot).
 *   ACK[v]             last epoch vCPU v acknowledged; written by vCPU v's worker.
 *   IMMEDIATE_EXIT[v]  kvm_run.immediate_exit of vCPU v (the kvm_run page outlives the worker).
 *   SIGPENDING[v]      the kick signal is pending on v's thread (blocked outside KVM_RUN).
 *   INSERTING/REMOVING guest-visible hotplug bits (the guest clears them); PENDING_REMOVAL: VMM-owned.
 *   ACTIVE[v]          a worker exists for slot v (VMM-owned).
 *
 * Changes to the protocol as first specified (each found by spin; see model/README.md, "Findings").
 * They are on by default; -DAS_SPECIFIED turns all of them off, -DNO_FIX_<name> turns off one.
 *   FIX_EXITED_DONE   an EXITED vCPU counts as done for pause/resume whatever epoch it last acknowledged.
 *   FIX_ACK_RUNNING   the checkpoint acknowledges, as RUNNING, any newer epoch that has no PAUSE
 *                     (a worker started while paused and resumed before it first ran; a rollback).
 *   FIX_EJECT_ONCE    eject sets KILL by CAS on the value it checked; only the CAS that sets KILL kicks
 *                     and posts the reap; every (re)activation of a slot takes a fresh epoch.
 *   FIX_EXIT_LAST     the worker writes ACK then RUNSTATE = EXITED as its last write and its thread
 *                     stays alive until the VMM reaps it (terminate()).
 */

#ifndef AS_SPECIFIED
#ifndef NO_FIX_EXITED_DONE
#define FIX_EXITED_DONE
#endif
#ifndef NO_FIX_ACK_RUNNING
#define FIX_ACK_RUNNING
#endif
#ifndef NO_FIX_EJECT_ONCE
#define FIX_EJECT_ONCE
#endif
#ifndef NO_FIX_EXIT_LAST
#define FIX_EXIT_LAST
#endif
#endif

#define N         3      /* vCPU slots; slot 0 is never ejected */
#define BOOT      2      /* slots 0 .. BOOT-1 are active at boot */
#ifndef K
#define K         6      /* lifecycle operations before the final shutdown */
#endif
#define MBOX_CAP  2      /* reap requests the mailbox holds; overflowing it is a property violation */

/* CMD word */
#define PAUSE     1
#define KILL      2
#define KICK      4
#define FLAGS(c)  ((c) & 7)
#define EP(c)     ((c) >> 3)
#define PACK(e, f) (((e) << 3) | (f))

/* RUNSTATE */
#define STARTING  0
#define RUNNING   1
#define PARKED    2
#define EXITED    3

/* API state of the VM */
#define VM_RUNNING  0
#define VM_PAUSED   1
#define VM_SHUTDOWN 2

/* who runs a synchronous section on the VMM thread (its event loop runs one at a time) */
#define LOOP_FREE      0
#define LOOP_LIFECYCLE 1
#define LOOP_MAILBOX   2

byte CMD[N];
byte RUNSTATE[N];
byte ACK[N];
bit  IMMEDIATE_EXIT[N];
bit  SIGPENDING[N];
byte THREADS[N];          /* live OS threads of slot v's worker(s); a signal needs one */
bit  INSERTING[N];
bit  REMOVING[N];
bit  PENDING_REMOVAL[N];
bit  ACTIVE[N];

byte epoch;               /* the VMM's request epoch */
byte vmstate = VM_RUNNING;
byte loop = LOOP_FREE;
chan mbox = [MBOX_CAP] of { byte };   /* "reap v" requests, vCPU workers -> VMM */
bit  SYSREQ;              /* reset / poweroff request: a coalescing flag word, vCPU -> VMM */

/* ghost state for the properties */
bit  pausing;             /* a pause() is in progress (from its start to Paused or to the end of its rollback) */
bit  busy;                /* a pause, resume or shutdown is in progress */

#ifdef BROKEN_8092
/* cloud-hypervisor's vcpu_states mutex (0 = free, else holder + 1) */
byte vcpu_states_lock;
#endif

#define NO_REMOVAL_PENDING (!PENDING_REMOVAL[0] && !PENDING_REMOVAL[1] && !PENDING_REMOVAL[2])

#ifdef FIX_EXITED_DONE
#define PAUSE_DONE(v, e)  (!ACTIVE[v] || RUNSTATE[v] == EXITED || (ACK[v] >= (e) && RUNSTATE[v] == PARKED))
#define RESUME_DONE(v, e) (!ACTIVE[v] || RUNSTATE[v] == EXITED || (ACK[v] >= (e) && RUNSTATE[v] == RUNNING))
#else
#define PAUSE_DONE(v, e)  (!ACTIVE[v] || (ACK[v] >= (e) && (RUNSTATE[v] == PARKED || RUNSTATE[v] == EXITED)))
#define RESUME_DONE(v, e) (!ACTIVE[v] || (ACK[v] >= (e) && (RUNSTATE[v] == RUNNING || RUNSTATE[v] == EXITED)))
#endif

/*
 * Deadline of an await on the VMM thread.  By default it can fire only as spin's `timeout`, i.e. when no
 * process at all can move, and then it is a property violation: spin proves the deadline is never needed.
 * With -DDEADLINE_ANYTIME it can fire at any moment (a slow host), and the rollback must then work.
 * The broken model has no deadline (cloud-hypervisor's `paused` wait loop has none).
 */
#if defined(BROKEN_8092)
#define PAUSE_DEADLINE false
#define DEADLINE       false
#elif defined(DEADLINE_ANYTIME)
#define PAUSE_DEADLINE true
#define DEADLINE       timeout -> assert(false)
#else
#define PAUSE_DEADLINE timeout -> assert(false)   /* "a deadline was needed" */
#define DEADLINE       timeout -> assert(false)
#endif

#ifdef BROKEN_8092
#define LOCK_STATES(who)   atomic { vcpu_states_lock == 0 -> vcpu_states_lock = (who) + 1 }
#define UNLOCK_STATES()    vcpu_states_lock = 0
#else
#define LOCK_STATES(who)   skip
#define UNLOCK_STATES()    skip
#endif

/* the kick: the caller has already changed CMD (and notified); then immediate_exit, then the signal */
inline kick(t) {
  IMMEDIATE_EXIT[t] = 1;
  atomic { assert(THREADS[t] > 0);   /* never pthread_kill a thread that has ended */
           SIGPENDING[t] = 1 }
}

inline enqueue_reap(t) {
  atomic {
    if
    :: nfull(mbox) -> mbox!t
    :: full(mbox) -> assert(false)    /* the mailbox bound is exceeded */
    fi
  }
}

/* ---------------------------------------------------------------------------------------------------- */
/* vCPU worker                                                                                          */
/* ---------------------------------------------------------------------------------------------------- */

proctype vcpu(byte v) {
  byte c;        /* the CMD value observed at the checkpoint */
  byte sel;      /* the CPU the guest selected in the hotplug controller */
  byte seen;     /* eject: the CMD value of the selected CPU it checked */

checkpoint:
  c = CMD[v];
  if
  :: (c & KILL) -> goto die                      /* KILL dominates PAUSE (inv 4) */
  :: else
  fi;
  if
  :: (c & PAUSE) ->
       /* complete a half-done I/O: one KVM_RUN with immediate_exit = 1 returns EINTR at once and runs no
          guest instruction; then clear immediate_exit and consume a pending signal (sigtimedwait) */
       atomic { IMMEDIATE_EXIT[v] = 1; assert(RUNSTATE[v] != PARKED);
                IMMEDIATE_EXIT[v] = 0; SIGPENDING[v] = 0 }
       RUNSTATE[v] = PARKED;
       ACK[v] = EP(c);
       do
       :: atomic { CMD[v] != c -> c = CMD[v] }   /* Atomics.wait(CMD, c), then load */
          if
          :: (c & KILL) -> goto die
          :: !(c & PAUSE) -> break
          :: else -> ACK[v] = EP(c)              /* re-ack a newer pause epoch (or a KICK) while parked */
          fi
       od;
       RUNSTATE[v] = RUNNING;
       ACK[v] = EP(c)
  :: else
#ifdef FIX_ACK_RUNNING
       -> if
          :: RUNSTATE[v] != RUNNING || ACK[v] < EP(c) -> RUNSTATE[v] = RUNNING; ACK[v] = EP(c)
          :: else
          fi
#endif
  fi;
  if
  :: (c & KICK) ->                                /* clear KICK by CAS; on failure read CMD again */
       atomic {
         if
         :: CMD[v] == c -> CMD[v] = c - KICK
         :: else -> goto checkpoint
         fi
       }
  :: else
  fi;

  /* KVM_RUN */
  atomic {
    assert(RUNSTATE[v] != PARKED);                /* property: no guest entry while acknowledged PARKED */
    if
    :: IMMEDIATE_EXIT[v] || SIGPENDING[v] -> goto eintr
    :: else -> assert(vmstate != VM_PAUSED || busy)   /* property: no guest code runs while the API says Paused */
    fi
  }
  /* the guest runs; what makes KVM_RUN return: */
  if
  :: SIGPENDING[v] -> goto eintr                  /* the kick's signal interrupts KVM_RUN */
  :: goto halted                                  /* HLT / a spin: only a signal gets it out */
  :: skip                                         /* any other exit, handled in the worker */
  :: SYSREQ = 1                                   /* reset / poweroff request: post and go on */
  /* MMIO to the CPU hotplug controller (the handler runs here, on this worker, and never waits) */
  :: LOCK_STATES(v); skip; UNLOCK_STATES()        /* select a CPU / read its status */
  :: LOCK_STATES(v); INSERTING[1] = 0; UNLOCK_STATES()   /* ack insert */
  :: LOCK_STATES(v); INSERTING[2] = 0; UNLOCK_STATES()
  :: LOCK_STATES(v); REMOVING[1] = 0; UNLOCK_STATES()    /* ack remove */
  :: LOCK_STATES(v); REMOVING[2] = 0; UNLOCK_STATES()
  :: sel = 0; goto eject                          /* eject the selected CPU */
  :: sel = 1; goto eject
  :: sel = 2; goto eject
  fi;
  goto checkpoint;

halted:
  (SIGPENDING[v]);
eintr:
  IMMEDIATE_EXIT[v] = 0;
  SIGPENDING[v] = 0;                              /* sigtimedwait with a zero timeout */
  goto checkpoint;

eject:
  LOCK_STATES(v);
#ifdef FIX_EJECT_ONCE
retry:
  seen = CMD[sel];
  if
  :: sel != 0 && PENDING_REMOVAL[sel] && !(seen & KILL) ->
       atomic {
         if
         :: CMD[sel] == seen -> CMD[sel] = seen | KILL      /* CAS + notify */
         :: else -> goto retry
         fi
       }
       kick(sel);
       enqueue_reap(sel)
  :: else                                         /* not marked by the VMM, CPU 0, or already killed */
  fi;
  seen = 0;
#else
  if
  :: sel != 0 && PENDING_REMOVAL[sel] ->
       CMD[sel] = CMD[sel] | KILL;                /* Atomics.or + notify */
       kick(sel);
       enqueue_reap(sel)
  :: else
  fi;
#endif
  UNLOCK_STATES();
  sel = 0;
  goto checkpoint;

die:
#ifdef FIX_EXIT_LAST
  ACK[v] = EP(c);
  RUNSTATE[v] = EXITED                            /* last write; the thread lives on until the reap */
#else
  RUNSTATE[v] = EXITED;
  ACK[v] = EP(c);
  THREADS[v]--                                    /* the worker's thread ends */
#endif
}

/* ---------------------------------------------------------------------------------------------------- */
/* VMM thread: the lifecycle task (operations one at a time, inv 11)                                     */
/* ---------------------------------------------------------------------------------------------------- */

inline resume_body() {
  epoch++;
  e = epoch;
  for (v : 0 .. N - 1) {
    if
    :: ACTIVE[v] -> atomic { CMD[v] = PACK(e, FLAGS(CMD[v]) & ~PAUSE) }   /* CAS loop + notify */
    :: else
    fi
  }
  loop = LOOP_FREE;                               /* await: the event loop serves the mailbox meanwhile */
  for (v : 0 .. N - 1) {
    if
    :: RESUME_DONE(v, e)
    :: DEADLINE
    fi
  }
  atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE }
}

proctype vmm() {
  byte ops, v, e;

next_op:
  do
  :: atomic { ops < K && vmstate == VM_RUNNING && loop == LOOP_FREE ->   /* pause() */
              loop = LOOP_LIFECYCLE; busy = 1; pausing = 1; ops++ }
#ifdef BROKEN_8092
       LOCK_STATES(N);                            /* #8092: held across set PAUSE, kick and the wait */
#endif
       epoch++;
       e = epoch;
       for (v : 0 .. N - 1) {
         if
         :: ACTIVE[v] ->
              atomic { CMD[v] = PACK(e, FLAGS(CMD[v]) | PAUSE) }         /* CAS loop + notify */
              kick(v)
         :: else
         fi
       }
       loop = LOOP_FREE;
       for (v : 0 .. N - 1) {
         if
         :: PAUSE_DONE(v, e)
         :: PAUSE_DEADLINE ->
              /* roll back: resume every vCPU, report which vCPU, epoch and state it was stuck on */
#ifdef BROKEN_8092
              UNLOCK_STATES();
#endif
              atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE }
              resume_body();
              atomic { pausing = 0; busy = 0; loop = LOOP_FREE }
              goto next_op
         fi
       }
#ifdef BROKEN_8092
       UNLOCK_STATES();
#endif
       atomic {
         loop == LOOP_FREE ->
         vmstate = VM_PAUSED;
         /* property: the API state matches the vCPUs */
         assert(!ACTIVE[0] || RUNSTATE[0] == PARKED || RUNSTATE[0] == EXITED);
         assert(!ACTIVE[1] || RUNSTATE[1] == PARKED || RUNSTATE[1] == EXITED);
         assert(!ACTIVE[2] || RUNSTATE[2] == PARKED || RUNSTATE[2] == EXITED);
         pausing = 0; busy = 0
       }
  :: atomic { ops < K && vmstate == VM_PAUSED && loop == LOOP_FREE ->    /* resume() */
              loop = LOOP_LIFECYCLE; busy = 1; ops++ }
       resume_body();
       atomic {
         vmstate = VM_RUNNING;
         assert(!ACTIVE[0] || RUNSTATE[0] == RUNNING || RUNSTATE[0] == EXITED);
         assert(!ACTIVE[1] || RUNSTATE[1] == RUNNING || RUNSTATE[1] == EXITED);
         assert(!ACTIVE[2] || RUNSTATE[2] == RUNNING || RUNSTATE[2] == EXITED);
         busy = 0; loop = LOOP_FREE
       }
  :: atomic {                                    /* resize: add one vCPU (refused while a removal is pending) */
         ops < K && loop == LOOP_FREE && NO_REMOVAL_PENDING && (!ACTIVE[1] || !ACTIVE[2]) ->
         ops++;
         if
         :: !ACTIVE[1] -> v = 1
         :: !ACTIVE[2] -> v = 2
         fi;
#ifdef FIX_EJECT_ONCE
         epoch++;                                 /* a reused slot starts from a fresh epoch */
#endif
         INSERTING[v] = 1;
         CMD[v] = PACK(epoch, (vmstate == VM_PAUSED -> PAUSE : 0));
         RUNSTATE[v] = STARTING;
         ACTIVE[v] = 1;
         THREADS[v]++;
         run vcpu(v);                             /* new Worker; then notify the GED (no model effect) */
         v = 0
       }
  :: atomic {                                    /* resize: remove one vCPU (refused while one is pending) */
         ops < K && loop == LOOP_FREE && NO_REMOVAL_PENDING && (ACTIVE[1] || ACTIVE[2]) ->
         ops++;
         if
         :: ACTIVE[1] -> v = 1
         :: ACTIVE[2] -> v = 2
         fi;
         REMOVING[v] = 1;
         PENDING_REMOVAL[v] = 1;                  /* then notify the GED */
         v = 0
       }
  :: atomic { loop == LOOP_FREE -> loop = LOOP_LIFECYCLE; busy = 1 }; break   /* shutdown() */
  od;

  /* shutdown(): KILL every active vCPU, kick, await EXITED */
  for (v : 0 .. N - 1) {
    if
    :: ACTIVE[v] ->
         atomic { CMD[v] = CMD[v] | KILL }         /* Atomics.or + notify */
         kick(v)
    :: else
    fi
  }
  loop = LOOP_FREE;
  for (v : 0 .. N - 1) {
    if
    :: !ACTIVE[v] || RUNSTATE[v] == EXITED
    :: DEADLINE
    fi
  }
  atomic { loop == LOOP_FREE -> vmstate = VM_SHUTDOWN; busy = 0 }
}

/* ---------------------------------------------------------------------------------------------------- */
/* VMM thread: the mailbox task (runs between the lifecycle task's awaits, inv 2)                        */
/* ---------------------------------------------------------------------------------------------------- */

active proctype mailbox() {
  byte r;
end_idle:
  do
  :: atomic { loop == LOOP_FREE && nempty(mbox) -> mbox?r }
     /* reap r: await RUNSTATE[r] == EXITED */
     atomic {
       loop == LOOP_FREE && RUNSTATE[r] == EXITED ->
       loop = LOOP_MAILBOX;
       assert(r != 0 && PENDING_REMOVAL[r]);      /* property: only a CPU the VMM marked is removed */
       ACTIVE[r] = 0;
#ifdef FIX_EXIT_LAST
       THREADS[r]--                               /* worker.terminate() */
#endif
     }
     atomic { PENDING_REMOVAL[r] = 0; loop = LOOP_FREE; r = 0 }   /* cleared last: resize may go on */
  :: atomic { loop == LOOP_FREE && SYSREQ -> SYSREQ = 0 }          /* reset / poweroff: decided elsewhere */
  od
}

init {
  byte i;
  atomic {
    for (i : 0 .. N - 1) {
      if
      :: i < BOOT -> ACTIVE[i] = 1; RUNSTATE[i] = STARTING; THREADS[i] = 1; run vcpu(i)
      :: else -> RUNSTATE[i] = EXITED
      fi
    }
    run vmm()
  }
}

ltl pause_completes { [] (pausing -> <> !pausing) }
ltl ops_complete    { [] (busy -> <> !busy) }
