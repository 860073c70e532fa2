/*
 * ssi DSM coherence protocol: home-based MSI directory, one request per page
 * at a time at the home; 4-hop, or with FORWARD (what dsm/src does) the owner
 * grants a fetched page itself and sharers ack a write to the writer.  Spec for dsm/src; docs/protocol.md is the
 * prose version (message names, transitions, races).
 *
 * Checked (see tests/model/check.sh):
 *   - SWMR: never a node in M together with another node in S/SM_A/M for the
 *     same page (asserted after every atomic step: "swmr_ok").
 *   - data value: every readable copy (S, SM_A, M) equals the last value
 *     written to that page in the global order of writes ("value_ok"), and a
 *     read miss returns that value ("read_ok"); zero-filled first touch reads 0.
 *   - no deadlock: every node can always finish its operations; when nothing
 *     can move, all channels are empty, no request is pending and no node is
 *     in a transient state ("quiescent_ok"), and pan finds no invalid end state.
 *   - the "unexpected message in this state" branches are asserted unreachable
 *     ("expected_ok"), so the implementation may treat them as protocol errors.
 *
 * Network: one FIFO channel per ordered (src, dst) pair, including src == dst
 * (the home node's own requests go through the same logic).  Different pairs
 * interleave freely, so messages of different pairs are reordered.
 *
 * Build switches (cpp, pass as spin -DNAME):
 *   GRANT_ACK      the requester acknowledges every grant and the home keeps
 *                  the page busy until the ack arrives (sketch's open question).
 *   VERSIONS       per-transaction versions and dsm/src's checks on them.
 *   SHARERS_ON_ACK as dsm/src: a sharer leaves the sharer set when its InvAck
 *                  arrives (not when the Inv is sent); "keep" decided at grant.
 *   MAXOPS=n       operations per node (default 2).
 *   OPS_NODE2=n    operations of node 2 (the node that homes nothing), for a
 *                  deeper one-off run (default MAXOPS).
 *   TOLERANT       no "expected_ok" asserts (used with the mutants below).
 *   MUTANT_SKIP_INV_ACK   home grants a write while one InvAck is missing.
 *   MUTANT_STALE_UPGRADE  home answers an UpgradeReq without data even when the
 *                         requester was invalidated meanwhile.
 *   MUTANT_STICKY_ZERO    home keeps the page's zero flag after a write grant.
 *   FORWARD        dsm/src's message paths (needs GRANT_ACK): the home grants
 *                  a write at once, together with the Invs, whose InvAcks go
 *                  to the requester; the requester installs after the number
 *                  of acks the grant names.  A Fetch/FetchInv names the
 *                  requester and the owner grants it the page itself (a read
 *                  also sends the home FetchAck with its new copy; the home's
 *                  page stays busy until both FetchAck and GrantAck are in).
 *                  With it, MUTANT_SKIP_INV_ACK makes the requester install
 *                  with one InvAck missing.
 *   MIGRATORY      (needs FORWARD) the home may serve any read miss as a
 *                  write: the reader (in IS_D) is granted M, by the home with
 *                  the Invs or by the owner it FetchInvs, and installs it
 *                  without writing.  dsm/src does this for pages it detected
 *                  as migratory; the model lets the home choose freely, so
 *                  every detection policy is covered.
 *   MUTANT_MIGRATORY_NO_INV  with MIGRATORY: a migratory read grant from the
 *                  home's copy skips the sharers' invalidation.
 *   REORDER_PAIRS  the messages queued on one (src, dst) pair may be received
 *                  in any order (a non-FIFO transport, or a receiver that
 *                  hands messages to fibers that may run out of order).
 *                  Fails without GRANT_ACK, passes with it.
 */

#define NN 3            /* nodes */
#define NP 2            /* pages */
#ifndef MAXOPS
#define MAXOPS 2        /* operations (misses, upgrades, write hits) per node */
#endif
#ifndef OPS_NODE2
#define OPS_NODE2 MAXOPS
#endif
#define OPS_OF(n) ((n) == 2 -> OPS_NODE2 : MAXOPS)
#ifndef CAP
#define CAP 4           /* channel capacity; every send asserts a free slot */
#endif

/* Page p's home is node p: node 0 homes page 0, node 1 homes page 1, node 2
 * homes nothing.  Nodes 0 and 1 are home and cache at the same time. */
#define HOME(p) (p)

mtype = {
  ReadReq, WriteReq, UpgradeReq,          /* node -> home */
  InvAck, FetchAck, FetchInvAck, GrantAck,/* node -> home */
  ReadGrant, WriteGrant,                  /* home -> node */
  Inv, Fetch, FetchInv                    /* home -> node */
};

/* Node-local page states. */
#define I    0          /* not present */
#define S    1          /* present, write-protected */
#define M    2          /* present, writable */
#define IS_D 3          /* read miss, waiting for ReadGrant */
#define IM_D 4          /* write miss, waiting for WriteGrant with data */
#define SM_A 5          /* upgrade, still readable, waiting for WriteGrant */

/* Message flags. */
#define F_ZERO   1      /* grant of a never-written page: fill zeros locally */
#define F_NODATA 2      /* upgrade grant: keep the copy you hold */
#define F_ACKS   4      /* FORWARD: WriteGrant flags / F_ACKS = InvAcks to collect */

/* Directory states at the home. */
#define UNC 0           /* no copy outside the home's memory */
#define SHD 1           /* sharers hold S copies equal to mem */
#define MOD 2           /* owner holds the only (writable) copy */
#define NONE 255

/* Request kinds queued at the home. */
#define Q_NONE  0
#define Q_READ  1
#define Q_WRITE 2
#define Q_UPG   3

/* Phase of the request the home is serving for a page. */
#define P_IDLE    0
#define P_FETCH   1     /* read: waiting for FetchAck from the owner */
#define P_COLLECT 2     /* write: waiting for InvAcks and/or FetchInvAck */
#define P_GACK    3     /* GRANT_ACK only: waiting for the requester's GrantAck */

/* kind, page, value, flags, version (0 unless VERSIONS) */
chan ch[NN * NN] = [CAP] of { mtype, byte, byte, byte, byte };
#define CH(s, d) ch[(s) * NN + (d)]

/* ---- node-local state ---- */
byte st[NN * NP];       /* page state */
byte dat[NN * NP];      /* page content (a write stores a fresh number) */
byte ops[NN];           /* operations issued */
#define ST(n, p)  st[(n) * NP + (p)]
#define DAT(n, p) dat[(n) * NP + (p)]

/* ---- home directory (only the home of p touches index p) ---- */
byte dir[NP];           /* UNC / SHD / MOD */
byte owner[NP];         /* node in M, or NONE */
byte sharers[NP];       /* bitmap of nodes in S */
bool zero[NP] = 1;      /* never written: grants carry F_ZERO, no data */
byte mem[NP];           /* the home's memory copy (valid unless MOD) */
byte queued[NP * NN];   /* pending request kind per (page, node): a set; the
                           home may serve it in any order, which covers FIFO */
#define Q(p, n) queued[(p) * NN + (n)]
byte phase[NP];
byte cur[NP];           /* requester being served */
bool curup[NP];         /* serving an upgrade of a current sharer: no data */
byte acks[NP];          /* InvAcks still missing */
bool needdata[NP];      /* FetchInvAck still missing */
byte fval[NP];          /* data received from the previous owner */
bool fgot[NP];

/* ---- versions (VERSIONS only; else always 0), as in dsm/src: every home
 * transaction (one served request) gets the next version, all its messages
 * carry it, acks echo it; a node only applies a Grant/Inv/Fetch whose version
 * is above the last one it applied for the page ("version_ok"), the home only
 * accepts an ack of the current transaction. ---- */
byte hver[NP];          /* home: version of the current/last transaction */
byte nver[NN * NP];     /* node: last version applied for the page */
#define NVER(n, p) nver[(n) * NP + (p)]

/* ---- FORWARD: a requester's write grant and InvAcks being collected ---- */
#ifdef FORWARD
byte nacks[NN * NP];    /* InvAcks received for the outstanding write */
bool gwait[NN * NP];    /* its grant arrived, acks still missing */
byte gval[NN * NP];     /* that grant's value, flags, version */
byte gflg[NN * NP];
byte gver[NN * NP];
bool fetched[NP];       /* home: forwarded read, the owner's FetchAck is in */
bool gacked[NP];        /* home: forwarded read, the requester's GrantAck is in */
#define NACKS(n, p) nacks[(n) * NP + (p)]
#define GWAIT(n, p) gwait[(n) * NP + (p)]
#define GVAL(n, p) gval[(n) * NP + (p)]
#define GFLG(n, p) gflg[(n) * NP + (p)]
#define GVER(n, p) gver[(n) * NP + (p)]
#define FROM_HOME_OR_OWNER(s, p) 1   /* forwarded grants come from the owner */
#else
#define FROM_HOME_OR_OWNER(s, p) (s == HOME(p))
#endif

#ifdef MIGRATORY
#define MIGR 1
#define NOT_MREAD(n, p) (ST(n, p) != IS_D)  /* else: a read granted M */
#else
#define MIGR 0
#define NOT_MREAD(n, p) 1
#endif

/* ---- ghosts for the data-value invariant ---- */
byte last[NP];          /* last value written (= number of writes so far),
                           0 = the initial zero page */

/* Scratch of the atomic steps.  hidden = not part of the state vector: every
 * step writes them before reading them and no step blocks half-way (sends
 * assert a free slot), so sharing them between processes is safe. */
hidden mtype k;
hidden byte p, v, f, mv, src, r, act, ci, cp, cw, cr, gv, gf, kind, si, rot, qi;
/* Named assertion results: pan prints the name of the one that failed. */
hidden byte swmr_ok, value_ok, read_ok, write_ok, expected_ok, version_ok, quiescent_ok;

#define BIT(n) (1 << (n))
#define READABLE(s) ((s) == S || (s) == SM_A || (s) == M)

/* Protocol sanity: the branch is reachable only in the stated situation.
 * TOLERANT (used with the mutants) turns these off, so a mutant has to be
 * caught by SWMR / data value / quiescence, not by these. */
#ifdef TOLERANT
#define EXPECT(c) skip
#else
#define EXPECT(c) expected_ok = (c); assert(expected_ok)
#endif

#ifdef VERSIONS
#define NODE_VERSION(n, p) version_ok = (mv > NVER(n, p)); assert(version_ok); NVER(n, p) = mv
#define HOME_VERSION(p) version_ok = (mv == hver[p]); assert(version_ok)
#else
#define NODE_VERSION(n, p) skip
#define HOME_VERSION(p) skip
#endif

inline send_grant_ack(s, h, p) {
#ifdef GRANT_ACK
  send(s, h, GrantAck, p, 0, 0, mv)
#else
  skip
#endif
}

inline send(s, d, k, p, v, f, ver) {
  assert(nfull(CH(s, d)));
  CH(s, d)!k, p, v, f, ver
}

/* Every atomic step ends here: SWMR and data value over the whole system. */
inline check() {
  ci = 0; cp = 0; cw = 0; cr = 0;
  swmr_ok = 1; value_ok = 1;
  for (cp : 0 .. NP - 1) {
    cw = 0; cr = 0;
    for (ci : 0 .. NN - 1) {
      if
      :: ST(ci, cp) == M -> cw++
      :: ST(ci, cp) == S || ST(ci, cp) == SM_A -> cr++
      :: else -> skip
      fi;
      if
      :: READABLE(ST(ci, cp)) && DAT(ci, cp) != last[cp] -> value_ok = 0
      :: else -> skip
      fi
    }
    if
    :: cw > 1 || (cw == 1 && cr > 0) -> swmr_ok = 0
    :: else -> skip
    fi
  }
  assert(swmr_ok);
  assert(value_ok);
  ci = 0; cp = 0; cw = 0; cr = 0
}

/* A write performed by node n on page p (n is in M).  A real write changes
 * only part of the page, so the writer's copy must be current before it. */
inline do_write(n, p) {
  write_ok = (DAT(n, p) == last[p]);
  assert(write_ok);
  last[p]++;                    /* a fresh value */
  DAT(n, p) = last[p]
}

/* ---------------- home side ---------------- */

inline grant_write(h, p) {
#ifdef SHARERS_ON_ACK
  /* dsm/src decides "keep" when granting, from the sharers left after the acks */
  curup[p] = (curup[p] && (sharers[p] & BIT(cur[p])) != 0);
#endif
  /* no data if the requester still holds its S copy, else the previous
     owner's data, else zeros (never written), else the memory copy */
  if
  :: curup[p] -> gv = 0; gf = F_NODATA
  :: !curup[p] && fgot[p] -> gv = fval[p]; gf = 0
  :: !curup[p] && !fgot[p] && zero[p] -> gv = 0; gf = F_ZERO
  :: !curup[p] && !fgot[p] && !zero[p] -> gv = mem[p]; gf = 0
  fi;
  send(h, cur[p], WriteGrant, p, gv, gf, hver[p]);
  dir[p] = MOD; owner[p] = cur[p]; sharers[p] = 0;
#ifndef MUTANT_STICKY_ZERO
  zero[p] = 0;
#endif
  fgot[p] = 0; fval[p] = 0; curup[p] = 0; gv = 0; gf = 0;
#ifdef GRANT_ACK
  phase[p] = P_GACK
#else
  phase[p] = P_IDLE; cur[p] = 0
#endif
}

inline grant_read(h, p, r, v) {
  if
  :: zero[p] -> gv = 0; gf = F_ZERO
  :: else -> gv = v; gf = 0
  fi;
  send(h, r, ReadGrant, p, gv, gf, hver[p]);
  gv = 0; gf = 0;
  dir[p] = SHD; sharers[p] = sharers[p] | BIT(r);
#ifdef GRANT_ACK
  phase[p] = P_GACK
#else
  phase[p] = P_IDLE; cur[p] = 0
#endif
}

inline try_finish_write(h, p) {
  if
#ifdef MUTANT_SKIP_INV_ACK
  :: phase[p] == P_COLLECT && acks[p] <= 1 && !needdata[p] -> grant_write(h, p)
#else
  :: phase[p] == P_COLLECT && acks[p] == 0 && !needdata[p] -> grant_write(h, p)
#endif
  :: else -> skip
  fi
}

#ifdef FORWARD
/* A write, granted at once: the owner forwards its copy (FetchInv naming r),
 * or the home sends the Invs (naming r, who collects the acks) and the
 * grant, which says how many acks to wait for. */
inline serve_write_forward(h, p, r) {
  if
  :: owner[p] != NONE -> send(h, owner[p], FetchInv, p, r, 0, hver[p])
  :: else ->
       cw = 0;
       for (si : 0 .. NN - 1) {
         if
#ifdef MUTANT_MIGRATORY_NO_INV
         :: si != r && (sharers[p] & BIT(si)) != 0 && kind != Q_READ -> send(h, si, Inv, p, r, 0, hver[p]); cw++
#else
         :: si != r && (sharers[p] & BIT(si)) != 0 -> send(h, si, Inv, p, r, 0, hver[p]); cw++
#endif
         :: else -> skip
         fi
       }
#ifdef MUTANT_STALE_UPGRADE
       curup[p] = (kind == Q_UPG);
#else
       curup[p] = (kind == Q_UPG && (sharers[p] & BIT(r)) != 0);
#endif
       if
       :: curup[p] -> gv = 0; gf = F_NODATA
       :: !curup[p] && zero[p] -> gv = 0; gf = F_ZERO
       :: !curup[p] && !zero[p] -> gv = mem[p]; gf = 0
       fi;
       send(h, r, WriteGrant, p, gv, gf + cw * F_ACKS, hver[p]);
       cw = 0; gv = 0; gf = 0; curup[p] = 0
  fi;
  dir[p] = MOD; owner[p] = r; sharers[p] = 0;
#ifndef MUTANT_STICKY_ZERO
  zero[p] = 0;
#endif
  phase[p] = P_GACK
}
#endif

/* Start serving the queued request of node r for page p (home h, idle page). */
inline serve(h, p, r) {
#ifdef VERSIONS
  hver[p]++;
#endif
  kind = Q(p, r); Q(p, r) = Q_NONE; cur[p] = r;
  if
  :: kind == Q_READ ->
       assert(owner[p] != r);            /* a reader is in I, never the owner */
       if
#ifdef MIGRATORY
       :: serve_write_forward(h, p, r)   /* migratory: grant the reader M */
#endif
#ifdef FORWARD
       :: owner[p] != NONE -> send(h, owner[p], Fetch, p, r, 0, hver[p]); phase[p] = P_FETCH;
            fetched[p] = 0; gacked[p] = 0
#else
       :: owner[p] != NONE -> send(h, owner[p], Fetch, p, 0, 0, hver[p]); phase[p] = P_FETCH
#endif
       :: owner[p] == NONE -> grant_read(h, p, r, mem[p])
       fi
  :: else ->
       assert(owner[p] != r);
#ifdef FORWARD
       serve_write_forward(h, p, r)
#else
       /* An upgrade from a node that was invalidated meanwhile is a write miss. */
#ifdef MUTANT_STALE_UPGRADE
       curup[p] = (kind == Q_UPG);
#else
       curup[p] = (kind == Q_UPG && (sharers[p] & BIT(r)) != 0);
#endif
       for (si : 0 .. NN - 1) {
         if
         :: si != r && (sharers[p] & BIT(si)) != 0 ->
              send(h, si, Inv, p, 0, 0, hver[p]); acks[p]++
         :: else -> skip
         fi
       }
#ifndef SHARERS_ON_ACK
       sharers[p] = sharers[p] & BIT(r);
#endif
       if
       :: owner[p] != NONE -> send(h, owner[p], FetchInv, p, 0, 0, hver[p]); needdata[p] = 1; owner[p] = NONE
       :: else -> skip
       fi;
       phase[p] = P_COLLECT   /* try_finish_write follows the step */
#endif
  fi;
  kind = 0; si = 0
}

/* ---------------- node (cache) side ---------------- */

#define A_OP    1
#define A_SERVE 2
#define A_RECV  3

/* One operation of node n on page p (p not in a transient state). */
inline do_op(n, p) {
  ops[n]++;
  if
  :: ST(n, p) == I -> ST(n, p) = IS_D; send(n, HOME(p), ReadReq, p, 0, 0, 0)
  :: ST(n, p) == I -> ST(n, p) = IM_D; send(n, HOME(p), WriteReq, p, 0, 0, 0)
  :: ST(n, p) == S -> ST(n, p) = SM_A; send(n, HOME(p), UpgradeReq, p, 0, 0, 0)
  :: ST(n, p) == M -> do_write(n, p)       /* write hit: no message */
  fi
  /* read hits change nothing; "value_ok" covers them in every state */
}

/* Install a write grant (value v, flags f, version mv) and do the write
 * (MIGRATORY: a read miss granted M completes its read instead). */
inline install_write(n, s, p) {
  NODE_VERSION(n, p);
  if
#ifdef MIGRATORY
  :: (f & F_NODATA) == 0 && ST(n, p) == IS_D ->
       if
       :: (f & F_ZERO) != 0 -> DAT(n, p) = 0
       :: else -> DAT(n, p) = v
       fi
#endif
  :: (f & F_NODATA) != 0 ->
       /* keep the copy: valid only in SM_A (asserted; without the assert
          "write_ok" catches an invalidated copy being kept) */
       EXPECT(FROM_HOME_OR_OWNER(s, p) && ST(n, p) == SM_A)
  :: (f & F_NODATA) == 0 && (f & F_ZERO) != 0 && NOT_MREAD(n, p) ->
       EXPECT(FROM_HOME_OR_OWNER(s, p) && ST(n, p) == IM_D);
       DAT(n, p) = 0
  :: (f & (F_NODATA | F_ZERO)) == 0 && NOT_MREAD(n, p) ->
       EXPECT(FROM_HOME_OR_OWNER(s, p) && ST(n, p) == IM_D);
       DAT(n, p) = v
  fi;
#ifdef MIGRATORY
  if
  :: ST(n, p) == IS_D ->
       ST(n, p) = M;
       read_ok = (DAT(n, p) == last[p]);     /* the faulting read completes */
       assert(read_ok)
  :: else ->
       ST(n, p) = M;
       do_write(n, p)                        /* the faulting write completes */
  fi;
#else
  ST(n, p) = M;
  do_write(n, p);                            /* the faulting write completes */
#endif
#ifdef FORWARD
  NACKS(n, p) = 0; GWAIT(n, p) = 0; GVAL(n, p) = 0; GFLG(n, p) = 0; GVER(n, p) = 0;
#endif
  send_grant_ack(n, HOME(p), p)
}

/* Receive one message on the pair channel (s -> n) and handle it. */
inline receive(n, s) {
#ifdef REORDER_PAIRS
  /* rotate the pair's queue 0..len-1 times: any queued message may be next */
  rot = 0;
  do
  :: rot + 1 < len(CH(s, n)) -> CH(s, n)?k, p, v, f, mv; CH(s, n)!k, p, v, f, mv; rot++
  :: break
  od;
  rot = 0;
#endif
  CH(s, n)?k, p, v, f, mv;
  if
  /* ===== cache side: messages from the page's home ===== */
  :: k == ReadGrant ->
       EXPECT(FROM_HOME_OR_OWNER(s, p) && ST(n, p) == IS_D);
       NODE_VERSION(n, p);
       if
       :: (f & F_ZERO) != 0 -> DAT(n, p) = 0      /* UFFDIO_ZEROPAGE */
       :: else -> DAT(n, p) = v                   /* UFFDIO_COPY | MODE_WP */
       fi;
       ST(n, p) = S;
       read_ok = (DAT(n, p) == last[p]);          /* the faulting read completes */
       assert(read_ok);
       send_grant_ack(n, HOME(p), p)
  :: k == WriteGrant ->
#ifdef FORWARD
       EXPECT(ST(n, p) == IM_D || ST(n, p) == SM_A || (MIGR && ST(n, p) == IS_D));
       if
#ifdef MUTANT_SKIP_INV_ACK
       :: NACKS(n, p) + 1 < f / F_ACKS ->
#else
       :: NACKS(n, p) < f / F_ACKS ->         /* acks missing: wait for them */
#endif
            GWAIT(n, p) = 1; GVAL(n, p) = v; GFLG(n, p) = f; GVER(n, p) = mv
       :: else -> install_write(n, s, p)
       fi
#else
       install_write(n, s, p)
#endif
  :: k == Inv ->
       /* Only S and SM_A are reachable (asserted); the implementation acks
          in every state so that the home can never wait forever. */
       EXPECT(s == HOME(p) && (ST(n, p) == S || ST(n, p) == SM_A));
       NODE_VERSION(n, p);
       if
       :: ST(n, p) == S -> ST(n, p) = I; DAT(n, p) = 0      /* MADV_DONTNEED */
       :: ST(n, p) == SM_A -> ST(n, p) = IM_D; DAT(n, p) = 0
       :: else -> skip
       fi;
#ifdef FORWARD
       r = v; send(n, r, InvAck, p, 0, 0, mv)   /* to the requester v */
#else
       send(n, s, InvAck, p, 0, 0, mv)
#endif
  :: k == Fetch ->
       EXPECT(s == HOME(p) && ST(n, p) == M);
       NODE_VERSION(n, p);
       ST(n, p) = S;                               /* write-protect, then send */
#ifdef FORWARD
       r = v; send(n, r, ReadGrant, p, DAT(n, p), 0, mv);  /* to the requester v */
#endif
       send(n, s, FetchAck, p, DAT(n, p), 0, mv)
  :: k == FetchInv ->
       EXPECT(s == HOME(p) && ST(n, p) == M);
       NODE_VERSION(n, p);
#ifdef FORWARD
       r = v; v = DAT(n, p);
       ST(n, p) = I; DAT(n, p) = 0;                /* MADV_DONTNEED, then send */
       send(n, r, WriteGrant, p, v, 0, mv)       /* to the requester r */
#else
       v = DAT(n, p);
       ST(n, p) = I; DAT(n, p) = 0;                /* MADV_DONTNEED, then send */
       send(n, s, FetchInvAck, p, v, 0, mv)
#endif

  /* ===== home side: messages about a page homed here ===== */
  :: k == ReadReq || k == WriteReq || k == UpgradeReq ->
       EXPECT(HOME(p) == n && Q(p, s) == Q_NONE);
       if
       :: k == ReadReq -> Q(p, s) = Q_READ
       :: k == WriteReq -> Q(p, s) = Q_WRITE
       :: k == UpgradeReq -> Q(p, s) = Q_UPG
       fi
#ifdef FORWARD
  :: k == InvAck ->                          /* at the requester */
       EXPECT((ST(n, p) == IM_D || ST(n, p) == SM_A || (MIGR && ST(n, p) == IS_D)) && (!GWAIT(n, p) || NACKS(n, p) < GFLG(n, p) / F_ACKS));
#ifdef VERSIONS
       version_ok = (!GWAIT(n, p) || mv == GVER(n, p)); assert(version_ok);
#endif
       NACKS(n, p)++;
       if
#ifdef MUTANT_SKIP_INV_ACK
       :: GWAIT(n, p) && NACKS(n, p) + 1 >= GFLG(n, p) / F_ACKS ->
#else
       :: GWAIT(n, p) && NACKS(n, p) == GFLG(n, p) / F_ACKS ->
#endif
            v = GVAL(n, p); f = GFLG(n, p); mv = GVER(n, p); install_write(n, s, p)
       :: else -> skip
       fi
#else
  :: k == InvAck ->
       EXPECT(HOME(p) == n && phase[p] == P_COLLECT && acks[p] > 0);
       HOME_VERSION(p);
       if :: acks[p] > 0 -> acks[p]-- :: else -> skip fi;
#ifdef SHARERS_ON_ACK
       sharers[p] = sharers[p] & ~BIT(s);
#endif
       skip
#endif
  :: k == FetchInvAck ->
       EXPECT(HOME(p) == n && phase[p] == P_COLLECT && needdata[p]);
       HOME_VERSION(p);
       needdata[p] = 0; fgot[p] = 1; fval[p] = v
  :: k == FetchAck ->
       EXPECT(HOME(p) == n && phase[p] == P_FETCH && owner[p] == s);
       HOME_VERSION(p);
       /* the old owner keeps an S copy; memory is current again */
#ifdef FORWARD
       /* the owner granted the requester itself */
       mem[p] = v; sharers[p] = BIT(s) | BIT(cur[p]); owner[p] = NONE; dir[p] = SHD;
       zero[p] = 0;
       if
       :: gacked[p] -> phase[p] = P_IDLE; cur[p] = 0; gacked[p] = 0
       :: else -> fetched[p] = 1; phase[p] = P_GACK
       fi
#else
       mem[p] = v; sharers[p] = BIT(s); owner[p] = NONE;
       grant_read(n, p, cur[p], v)
#endif
#ifdef FORWARD
  :: k == GrantAck ->
       EXPECT(HOME(p) == n && (phase[p] == P_GACK || phase[p] == P_FETCH) && cur[p] == s);
       HOME_VERSION(p);
       if
       :: phase[p] == P_FETCH -> gacked[p] = 1   /* the owner's FetchAck is still due */
       :: else -> phase[p] = P_IDLE; cur[p] = 0; fetched[p] = 0
       fi
#else
  :: k == GrantAck ->
       EXPECT(HOME(p) == n && phase[p] == P_GACK && cur[p] == s);
       HOME_VERSION(p);
       phase[p] = P_IDLE; cur[p] = 0
#endif
  fi
}

/* ---------------- one node: cache and (for its pages) home ---------------- */

proctype Node(byte me) {
  /* One atomic step per iteration: pick something enabled, do it, check the
     invariants.  A node with nothing enabled is idle (a valid end state). */
end_idle:
  do
  :: atomic {
       if
       /* an operation of one of this node's vCPUs; at most one request per
          page is outstanding (later faults on that page wait for it) */
       :: ops[me] < OPS_OF(me) && ST(me, 0) <= M -> p = 0; act = A_OP
       :: ops[me] < OPS_OF(me) && ST(me, 1) <= M -> p = 1; act = A_OP
       /* home: start serving a queued request of an idle page */
       :: HOME(0) == me && phase[0] == P_IDLE && (Q(0, 0) | Q(0, 1) | Q(0, 2)) != 0 -> p = 0; act = A_SERVE
       :: HOME(1) == me && phase[1] == P_IDLE && (Q(1, 0) | Q(1, 1) | Q(1, 2)) != 0 -> p = 1; act = A_SERVE
       /* receive from one incoming pair channel */
       :: nempty(CH(0, me)) -> src = 0; act = A_RECV
       :: nempty(CH(1, me)) -> src = 1; act = A_RECV
       :: nempty(CH(2, me)) -> src = 2; act = A_RECV
       fi;
       if
       :: act == A_OP -> do_op(me, p)
       :: act == A_SERVE ->
            if :: Q(p, 0) != Q_NONE -> r = 0 :: Q(p, 1) != Q_NONE -> r = 1 :: Q(p, 2) != Q_NONE -> r = 2 fi;
            serve(me, p, r)
       :: act == A_RECV -> receive(me, src)
       fi;
       /* a write request completes once nothing is missing */
       if :: HOME(p) == me -> try_finish_write(me, p) :: else -> skip fi;
       k = 0; p = 0; v = 0; f = 0; mv = 0; src = 0; r = 0; act = 0;
       check()
     }
  od
}

/* Runs only when nothing else can move: the system must be quiescent. */
active proctype Final() {
  timeout ->
  atomic {
    quiescent_ok = 1;
    for (qi : 0 .. NN * NN - 1) {
      if :: len(ch[qi]) > 0 -> quiescent_ok = 0 :: else -> skip fi
    }
    for (qi : 0 .. NN * NP - 1) {
      if :: st[qi] == IS_D || st[qi] == IM_D || st[qi] == SM_A -> quiescent_ok = 0
         :: else -> skip fi;
      if :: queued[qi] != Q_NONE -> quiescent_ok = 0 :: else -> skip fi
    }
    for (qi : 0 .. NP - 1) {
      if :: phase[qi] != P_IDLE -> quiescent_ok = 0 :: else -> skip fi
    }
    for (qi : 0 .. NN - 1) {
      if :: ops[qi] != OPS_OF(qi) -> quiescent_ok = 0 :: else -> skip fi
    }
    assert(quiescent_ok)
  }
}

init {
  byte n;
  atomic {
    for (n : 0 .. NP - 1) { owner[n] = NONE }
    for (n : 0 .. NN - 1) { run Node(n) }
    n = 0
  }
}
