;; A component that imports an interface nobody provides. Refused at deploy
;; time with the import's name. Compiled to binary by tests/artifacts/build.rs.
(component
  (import "acme:exfiltrate/upload@1.0.0" (instance
    (export "send" (func (param "data" (list u8))))
  ))
)
