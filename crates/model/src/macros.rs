//! Declarative macros that give every entity the same lossless JSON behaviour.

/// Declares an entity struct whose JSON form has fixed camelCase keys plus [`crate::Extras`].
///
/// Each field is `name: Type => "jsonKey" [mode]` where mode is
/// - `req`: the key must be present;
/// - `opt`: `Type` is an `Option`; an absent key or `null` reads as `None`, `None` is omitted;
/// - `default(expr)`: an absent key reads as `expr`.
///
/// Unknown keys go to `extras` with their raw JSON text and are written back after the known
/// keys. Duplicate keys are an error.
#[macro_export]
macro_rules! entity {
    (@ser $map:ident, $value:expr, $key:literal, opt) => {
        if let Some(v) = &$value {
            $map.serialize_entry($key, v)?;
        }
    };
    (@ser $map:ident, $value:expr, $key:literal, $($mode:tt)+) => {
        $map.serialize_entry($key, &$value)?;
    };
    (@finish $slot:ident, $key:literal, $err:ty, req) => {
        match $slot {
            Some(v) => v,
            None => return Err(<$err as ::serde::de::Error>::missing_field($key)),
        }
    };
    (@finish $slot:ident, $key:literal, $err:ty, opt) => {
        $slot.flatten()
    };
    (@finish $slot:ident, $key:literal, $err:ty, default($default:expr)) => {
        match $slot {
            Some(v) => v,
            None => $default,
        }
    };
    (
        $(#[$smeta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $fty:ty => $key:literal [$($mode:tt)+],
            )*
        }
    ) => {
        $(#[$smeta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
            /// Keys this version of fzip does not know, kept verbatim and written back.
            pub extras: $crate::Extras,
        }

        impl $name {
            /// The JSON keys this type knows, in the order they are written.
            pub const KNOWN_KEYS: &'static [&'static str] = &[$($key),*];
        }

        const _: () = {
            use ::serde::ser::SerializeMap as _;

            impl ::serde::Serialize for $name {
                fn serialize<S: ::serde::Serializer>(
                    &self,
                    serializer: S,
                ) -> ::std::result::Result<S::Ok, S::Error> {
                    let mut map = serializer.serialize_map(None)?;
                    $( $crate::entity!(@ser map, self.$field, $key, $($mode)+); )*
                    for (k, v) in self.extras.iter() {
                        map.serialize_entry(k, v)?;
                    }
                    map.end()
                }
            }

            #[allow(non_camel_case_types)]
            enum __Field {
                $($field,)*
                __extra(::std::string::String),
            }

            struct __FieldVisitor;

            impl<'de> ::serde::de::Visitor<'de> for __FieldVisitor {
                type Value = __Field;
                fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: ::serde::de::Error>(
                    self,
                    v: &str,
                ) -> ::std::result::Result<__Field, E> {
                    Ok(match v {
                        $($key => __Field::$field,)*
                        other => __Field::__extra(other.to_owned()),
                    })
                }
            }

            impl<'de> ::serde::Deserialize<'de> for __Field {
                fn deserialize<D: ::serde::Deserializer<'de>>(
                    d: D,
                ) -> ::std::result::Result<Self, D::Error> {
                    d.deserialize_identifier(__FieldVisitor)
                }
            }

            struct __Visitor;

            impl<'de> ::serde::de::Visitor<'de> for __Visitor {
                type Value = $name;
                fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                    f.write_str(concat!("a ", stringify!($name), " object"))
                }
                fn visit_map<A: ::serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> ::std::result::Result<$name, A::Error> {
                    $( let mut $field: ::std::option::Option<$fty> = None; )*
                    let mut extras = $crate::Extras::new();
                    while let Some(key) = map.next_key::<__Field>()? {
                        match key {
                            $(
                                __Field::$field => {
                                    if $field.is_some() {
                                        return Err(<A::Error as ::serde::de::Error>::duplicate_field($key));
                                    }
                                    $field = Some(map.next_value::<$fty>()?);
                                }
                            )*
                            __Field::__extra(name) => {
                                let value: ::std::boxed::Box<::serde_json::value::RawValue> =
                                    map.next_value()?;
                                if extras.contains_key(&name) {
                                    return Err(<A::Error as ::serde::de::Error>::custom(
                                        format_args!("duplicate field `{name}`"),
                                    ));
                                }
                                extras.insert(name, value);
                            }
                        }
                    }
                    $( let $field: $fty = $crate::entity!(@finish $field, $key, A::Error, $($mode)+); )*
                    Ok($name { $($field,)* extras })
                }
            }

            impl<'de> ::serde::Deserialize<'de> for $name {
                fn deserialize<D: ::serde::Deserializer<'de>>(
                    d: D,
                ) -> ::std::result::Result<Self, D::Error> {
                    d.deserialize_map(__Visitor)
                }
            }
        };
    };
}

/// Declares a closed string enum with its exact wire strings.
#[macro_export]
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// Every wire string, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// The wire string.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// The value for a wire string.
            pub fn parse(text: &str) -> ::std::option::Option<Self> {
                match text { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        write!(f, "one of {:?}", $name::NAMES)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> ::std::result::Result<$name, E> {
                        $name::parse(v).ok_or_else(|| E::unknown_variant(v, $name::NAMES))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
