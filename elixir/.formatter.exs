[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,mix,bench}/**/*.{ex,exs}"],
  locals_without_parens: [defcommand: 2, defcommand: 3],
  export: [locals_without_parens: [defcommand: 2, defcommand: 3]]
]
