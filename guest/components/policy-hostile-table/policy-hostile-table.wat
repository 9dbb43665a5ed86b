;; Test-only hostile policy: grows a Wasm table without bound.
;;
;; Every decision (`on-permission-request`, `on-session-create`,
;; `on-file-access`) runs `table.grow` on a funcref table with no maximum, in
;; a loop: 16 Mi elements at a time, halving the step whenever the host
;; refuses (table.grow returns -1), and trapping (`unreachable`) once even a
;; single element is refused. A host without a table limit would let it take
;; gigabytes; the host's store limits (table elements, within the memory cap)
;; must refuse the growth, and the decision must fail closed. `init` succeeds.
;;
;; Why WAT and not Rust: no stable Rust construct emits `table.grow` (Rust
;; has no table intrinsics, and inline Wasm assembly is unstable), so this
;; one guest is written by hand. guest/build.sh hands this file to
;; qserve-componentize with `--wit wit/policy --world policy`, which embeds
;; the `policy` world (what wit-bindgen would do) and builds the component.
;;
;; The exports follow the canonical ABI for qserve:policy@0.2.0 `decide`:
;; - init(config: string) -> result<policy-info, string>: params (ptr, len);
;;   the result (5 flat values) is returned through a pointer.
;; - on-session-create(ctx): `context` flattens to 13 values, passed flat.
;; - on-permission-request and on-file-access: more than 16 flat values, so
;;   the host passes one pointer to the arguments in memory.
;; - Every decision's result is returned through a pointer; none is ever
;;   written, as no decision returns.
(module
  (memory (export "memory") 2)
  (table $hoard 1 funcref)

  ;; policy-info strings.
  (data (i32.const 64) "hostile-table")
  (data (i32.const 96) "0.1.0")
  ;; init's return area: result<policy-info, string>, ok (discriminant 0),
  ;; name = (64, 13), version = (96, 5).
  (data (i32.const 16)
    "\00\00\00\00" "\40\00\00\00" "\0d\00\00\00" "\60\00\00\00" "\05\00\00\00")

  ;; cabi_realloc's bump pointer: everything below 1024 is static data.
  (global $bump (mut i32) (i32.const 1024))

  ;; A bump allocator: the host only allocates argument space, which is
  ;; small; nothing is freed, and memory grows as needed (a refused growth
  ;; traps, which the host treats as a fault).
  (func $realloc (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32)
    (result i32)
    (local $ptr i32) (local $end i32)
    ;; ptr = (bump + align - 1) & -align
    (local.set $ptr
      (i32.and
        (i32.sub (i32.add (global.get $bump) (local.get $align)) (i32.const 1))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $new_size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (global.set $bump (local.get $end))
    (block $fits
      (loop $more
        (br_if $fits
          (i64.le_u
            (i64.extend_i32_u (local.get $end))
            (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $more)))
    ;; A reallocation keeps the old contents.
    (if (local.get $old)
      (then
        (memory.copy (local.get $ptr) (local.get $old)
          (select (local.get $old_size) (local.get $new_size)
            (i32.lt_u (local.get $old_size) (local.get $new_size))))))
    (local.get $ptr))

  ;; Never returns: grows until refused at one element, then traps.
  (func $grow_forever
    (local $step i32)
    (local.set $step (i32.const 0x1000000))
    (loop $again
      (if (i32.eq (table.grow $hoard (ref.null func) (local.get $step)) (i32.const -1))
        (then
          (local.set $step (i32.shr_u (local.get $step) (i32.const 1)))
          (if (i32.eqz (local.get $step)) (then unreachable))))
      (br $again)))

  (func (export "qserve:policy/decide@0.2.0#init")
    (param $config_ptr i32) (param $config_len i32) (result i32)
    (i32.const 16))

  (func (export "qserve:policy/decide@0.2.0#on-permission-request")
    (param $args i32) (result i32)
    (call $grow_forever)
    (unreachable))

  (func (export "qserve:policy/decide@0.2.0#on-session-create")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (call $grow_forever)
    (unreachable))

  (func (export "qserve:policy/decide@0.2.0#on-file-access")
    (param $args i32) (result i32)
    (call $grow_forever)
    (unreachable)))
