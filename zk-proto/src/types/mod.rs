//! Protocol enumerations and value types with their wire numbers.

mod acl;
mod create_mode;
mod error_code;
mod event;
mod opcode;
mod stat;

pub use acl::{digest_id, digest_of, Acl, Id, Perms};
pub use create_mode::CreateMode;
pub use error_code::ErrorCode;
pub use event::{AddWatchMode, EventType, KeeperState, WatcherType};
pub use opcode::OpCode;
pub use stat::{Stat, StatPersisted};

/// Defines a fieldless enum carried as a jute `int`, with `ALL`, `TryFrom<i32>` (the unknown
/// number as the error) and `From<Self> for i32`.
macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        #[repr(i32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The number carried on the wire.
            pub const fn as_i32(self) -> i32 {
                self as i32
            }
        }

        impl From<$name> for i32 {
            fn from(value: $name) -> i32 {
                value as i32
            }
        }

        impl TryFrom<i32> for $name {
            type Error = i32;
            fn try_from(value: i32) -> Result<Self, i32> {
                match value {
                    $( $value => Ok($name::$variant), )*
                    other => Err(other),
                }
            }
        }
    };
}
pub(crate) use int_enum;
