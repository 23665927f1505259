;; A component that imports `wasi:http/outgoing-handler`: an interface outside
;; the set an aggregate may use. The host must refuse it at deploy time and
;; name the import. Compiled to binary by tests/artifacts/build.rs.
(component
  (import "wasi:http/outgoing-handler@0.2.0" (instance $http
    (export "ping" (func (result u32)))
  ))
)
